// Whether a stream is a person's terminal, and whether colour is wanted there: only on a terminal, and
// never when NO_COLOR is set to anything non-empty (no-color.org). Read once, when a command starts.

export interface TerminalStyle {
  /** A TTY: lines may be redrawn in place. */
  readonly isTerminal: boolean;
  readonly colour: boolean;
}

export function terminalStyle(
  stream: { readonly isTTY?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): TerminalStyle {
  const isTerminal = stream.isTTY === true;
  return { isTerminal, colour: isTerminal && !env["NO_COLOR"] };
}

/** Wraps `text` in an SGR colour code when colour is on. */
export function paint(style: TerminalStyle, code: string, text: string): string {
  return style.colour ? `\x1b[${code}m${text}\x1b[0m` : text;
}
