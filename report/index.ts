// report/: an HTML report of one or more runs, charts drawn to SVG by ECharts. Imports shared/ only.
export { renderRunReport, writeRunReport, REPORT_DATA_VERSION } from "./write-report.js";
export { DATA_ELEMENT_ID } from "./html.js";
export { readRun, RunDirError, type Run } from "./run-dir.js";
export { readMetricsLog, type MetricsLog, type Logged } from "./metrics-log.js";
export { SummaryFileError, type RunSummary } from "./run-summary.js";
export { SERIES, SERIES_NAMES, type SeriesName, type Point } from "./series.js";
