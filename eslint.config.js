// Lint: type-aware rules that catch what a distributed trainer cannot afford (floating promises,
// misused promises in callbacks), plus import hygiene enforced by the folder layout.
import tseslint from "typescript-eslint";
import importX from "eslint-plugin-import-x";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "eslint.config.js"] },
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        // node:test's test()/describe() promises are awaited by the runner itself.
        {
          allowForKnownSafeCalls: [
            { from: "package", name: ["test", "describe", "it", "suite"], package: "node:test" },
          ],
        },
      ],
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/ban-ts-comment": "error",
      "no-restricted-imports": "off",
    },
  },
  {
    // The tree is the architecture: no import cycles anywhere.
    plugins: { "import-x": importX },
    settings: {
      "import-x/resolver-next": [createTypeScriptImportResolver()],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts"] },
      "import-x/extensions": [".ts", ".js"],
    },
    rules: { "import-x/no-cycle": "error" },
  },
  {
    // shared/ is imported by both sides and must import neither.
    files: ["shared/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: ["**/coordinator/**", "**/worker/**", "**/cli/**"] }],
    },
  },
);
