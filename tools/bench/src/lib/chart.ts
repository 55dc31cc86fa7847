/** A self-contained SVG chart of a run: throughput, latency at c=1, and the targets. */
import { type BenchResult, isError } from './types.js';

const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2'];
const WIDTH = 1100;
const LABEL_W = 290;
const BAR_W = WIDTH - LABEL_W - 110;

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${x}" y="${y}" ${attrs}>${esc(content)}</text>`;
}

interface BarGroup {
  readonly label: string;
  readonly values: readonly { readonly series: string; readonly value: number; readonly display: string }[];
}

/** Horizontal grouped bars; returns the SVG fragment and its height. */
function barPanel(title: string, y0: number, groups: readonly BarGroup[], series: readonly string[]): { svg: string; height: number } {
  const parts: string[] = [text(10, y0 + 18, title, 'font-size="15" font-weight="bold"')];
  let y = y0 + 30;
  series.forEach((s, i) => {
    parts.push(`<rect x="${LABEL_W + i * 120}" y="${y}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`);
    parts.push(text(LABEL_W + i * 120 + 16, y + 11, s, 'font-size="12"'));
  });
  y += 22;
  const max = Math.max(1e-9, ...groups.flatMap((g) => g.values.map((v) => (Number.isFinite(v.value) ? v.value : 0))));
  const barH = 11;
  for (const group of groups) {
    const groupH = group.values.length * (barH + 2) + 8;
    parts.push(text(LABEL_W - 8, y + groupH / 2, group.label, 'font-size="12" text-anchor="end" dominant-baseline="middle"'));
    group.values.forEach((v, i) => {
      const index = series.indexOf(v.series);
      const w = Number.isFinite(v.value) ? Math.max(1, (v.value / max) * BAR_W) : 0;
      const by = y + i * (barH + 2);
      parts.push(`<rect x="${LABEL_W}" y="${by}" width="${w.toFixed(1)}" height="${barH}" fill="${COLORS[index % COLORS.length]}"/>`);
      parts.push(text(LABEL_W + w + 4, by + barH - 1, v.display, 'font-size="10" fill="#333"'));
    });
    y += groupH;
  }
  return { svg: parts.join('\n'), height: y - y0 + 10 };
}

export function svgChart(r: BenchResult): string {
  const parts: string[] = [];
  let y = 0;
  const m = r.meta;
  parts.push(text(10, 22, `LLM inference API benchmark — ${m.date} (${m.mode})`, 'font-size="18" font-weight="bold"'));
  parts.push(text(10, 42, `${m.machine.cpuModel}, ${m.machine.cores} CPUs, Node ${m.machine.node}; ${m.pinning.description}`, 'font-size="11" fill="#555"'));
  parts.push(text(10, 57, `${m.loadGenerator}`, 'font-size="11" fill="#555"'));
  y = 70;

  if (!isError(r.throughput)) {
    const t = r.throughput;
    const variant = t.variants[0];
    if (variant) {
      const cs = [...new Set(t.cells.map((c) => c.concurrency))];
      const series = cs.map((c) => `c=${c}`);
      const groups: BarGroup[] = variant.targets.map((target) => ({
        label: target.label,
        values: cs.map((c) => {
          const cell = t.cells.find((x) => x.variant === variant.name && x.target === target.id && x.concurrency === c);
          return { series: `c=${c}`, value: cell?.rps ?? Number.NaN, display: cell ? `${cell.rps} req/s` : 'n/a' };
        }),
      }));
      const panel = barPanel(`Requests/s, ${variant.name} (higher is better)`, y, groups, series);
      parts.push(panel.svg);
      y += panel.height;

      const latencyGroups: BarGroup[] = variant.targets.map((target) => {
        const cell = t.cells.find((x) => x.variant === variant.name && x.target === target.id && x.concurrency === 1);
        return {
          label: target.label,
          values: [
            { series: 'p50', value: cell?.p50Ms ?? Number.NaN, display: cell ? `${cell.p50Ms.toFixed(3)} ms` : 'n/a' },
            { series: 'p99', value: cell?.p99Ms ?? Number.NaN, display: cell ? `${cell.p99Ms.toFixed(3)} ms` : 'n/a' },
          ],
        };
      });
      const latency = barPanel(`Latency at c=1, ${variant.name} (lower is better)`, y, latencyGroups, ['p50', 'p99']);
      parts.push(latency.svg);
      y += latency.height;

      const cpuGroups: BarGroup[] = variant.targets
        .filter((target) => target.id !== 'direct')
        .map((target) => {
          const cell = t.cells.find((x) => x.variant === variant.name && x.target === target.id && x.concurrency === 16);
          const value = cell?.cpuUsPerRequest ?? Number.NaN;
          return { label: target.label, values: [{ series: 'CPU µs/req', value, display: Number.isFinite(value) ? `${value} µs` : 'n/a' }] };
        });
      const cpu = barPanel(`Server CPU per request at c=16, ${variant.name} (lower is better)`, y, cpuGroups, ['CPU µs/req']);
      parts.push(cpu.svg);
      y += cpu.height;
    }
  }

  if (!isError(r.streaming)) {
    const groups: BarGroup[] = r.streaming.firstToken.map((x) => ({
      label: x.label,
      values: [
        { series: 'first token p50', value: x.firstTokenP50Ms, display: `${x.firstTokenP50Ms.toFixed(3)} ms` },
        { series: 'first token p99', value: x.firstTokenP99Ms, display: `${x.firstTokenP99Ms.toFixed(3)} ms` },
      ],
    }));
    const panel = barPanel('Streaming: time to first token at c=1 (lower is better)', y, groups, ['first token p50', 'first token p99']);
    parts.push(panel.svg);
    y += panel.height;
  }

  if (!isError(r.llama)) {
    const groups: BarGroup[] = r.llama.models.map((x) => ({
      label: `llama.cpp ${x.name}`,
      values: [
        { series: 'raw node-llama-cpp', value: x.raw.tokensPerCpuS ?? x.raw.tokensPerS, display: `${x.raw.tokensPerCpuS ?? x.raw.tokensPerS}` },
        {
          series: 'served by the API',
          value: x.api.tokensPerCpuS ?? x.api.tokensPerS,
          display: `${x.api.tokensPerCpuS ?? x.api.tokensPerS} (${(x.ratio * 100).toFixed(1)}%)`,
        },
      ],
    }));
    const panel = barPanel('llama.cpp tokens per CPU-second (higher is better)', y, groups, ['raw node-llama-cpp', 'served by the API']);
    parts.push(panel.svg);
    y += panel.height;
  }

  parts.push(text(10, y + 18, 'Targets (same run)', 'font-size="15" font-weight="bold"'));
  y += 30;
  for (const target of r.targets) {
    const color = target.met ? '#2e7d32' : '#c62828';
    parts.push(`<rect x="10" y="${y}" width="70" height="16" rx="3" fill="${color}"/>`);
    parts.push(text(45, y + 12, target.met ? 'met' : 'not met', 'font-size="11" fill="#fff" text-anchor="middle"'));
    const ratio = target.ratio === null ? '' : ` — ratio ${target.ratio.toFixed(2)}`;
    // The measured text can be long (the JSON and the markdown have it whole): first clause only.
    const measured = target.measured.split(/[;(]/)[0]!.trim();
    parts.push(text(90, y + 12, `${target.goal}: ${measured.length > 60 ? `${measured.slice(0, 57)}...` : measured}${ratio}`, 'font-size="12"'));
    y += 20;
  }
  y += 10;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="Helvetica, Arial, sans-serif">\n` +
    `<rect width="100%" height="100%" fill="#fff"/>\n${parts.join('\n')}\n</svg>\n`
  );
}
