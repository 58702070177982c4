// ECharts' server-side renderer: an option in, a static <svg> string out. ECharts is imported on first use,
// so commands that never draw a chart do not pay its load time (about half a second).
import type { EChartsOption } from "echarts";

export interface ChartSize {
  readonly width: number;
  readonly height: number;
}

export async function renderSvg(option: EChartsOption, size: ChartSize): Promise<string> {
  const echarts = await import("echarts");
  const chart = echarts.init(null, null, { renderer: "svg", ssr: true, ...size });
  try {
    chart.setOption({ ...option, animation: false });
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}
