/**
 * `npx tsx bench/profile-window.ts <file.cpuprofile> [fromMs toMs]`: the functions a V8 CPU
 * profile (node --cpu-prof) spent most time in, by self time and by inclusive time, counting
 * only samples taken between fromMs and toMs on CLOCK_MONOTONIC (the window bench:sync prints
 * for its flat-out phase); the whole profile without them.
 */
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, from, to] = process.argv.slice(2);
const profile = JSON.parse(readFileSync(file!, "utf8")) as Profile;
const fromUs = from === undefined ? -Infinity : Number(from) * 1000;
const toUs = to === undefined ? Infinity : Number(to) * 1000;

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n: Node) => {
  const url = n.callFrame.url.replace(/^.*\/(node_modules\/|src\/)/, "$1");
  return `${n.callFrame.functionName || "(anonymous)"} ${url}:${n.callFrame.lineNumber + 1}`;
};

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let t = profile.startTime;
let total = 0;
profile.samples.forEach((id, i) => {
  t += profile.timeDeltas[i]!;
  if (t < fromUs || t > toUs) return;
  const dt = profile.timeDeltas[i + 1] ?? 0;
  total += dt;
  const node = byId.get(id)!;
  self.set(label(node), (self.get(label(node)) ?? 0) + dt);
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const l = label(byId.get(at)!);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusive.set(l, (inclusive.get(l) ?? 0) + dt);
  }
});
const top = (m: Map<string, number>, k: number) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, k)
    .map(
      ([l, us]) =>
        `${((us / total) * 100).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(6)} ms  ${l}`,
    )
    .join("\n");
console.log(
  `${(total / 1000).toFixed(0)} ms sampled in the window\n\nself:\n${top(self, 40)}\n\ninclusive:\n${top(inclusive, 60)}`,
);
