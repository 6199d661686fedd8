import client from "prom-client";

/**
 * Where a change's time goes on the server, one interval each, in the order a change meets them:
 *
 * - `parse`: the request arrived → its body read and validated, handed to the committer;
 * - `queue`: handed to the committer → its group's transaction starts (group-commit queueing);
 * - `lock`: the transaction starts → the routing lock is held and the group's reads are back;
 * - `commit`: the lock is held → the commit is acknowledged by the database (planning, writes,
 *   the WAL flush);
 * - `answer`: committed → the HTTP answer handed to the socket (not for `wait=applied`);
 * - `frame`: committed → the diff carrying it handed to a worker's socket (once per worker);
 * - `ack`: that diff handed to the socket → the worker's acknowledgement of it read.
 */
export type ChangeStage = "parse" | "queue" | "lock" | "commit" | "answer" | "frame" | "ack";

export const CHANGE_STAGES: readonly ChangeStage[] = [
  "parse",
  "queue",
  "lock",
  "commit",
  "answer",
  "frame",
  "ack",
];

/** Takes one stage's duration, in seconds. */
export interface StageClock {
  observe(stage: ChangeStage, seconds: number): void;
}

export const noStages: StageClock = { observe: () => undefined };

/** Fine at the low end: the stages of a healthy change take tenths of a millisecond to a few. */
const BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
  0.1, 0.25, 0.5, 1, 2.5,
];

/**
 * `appproxy_change_stage_seconds{stage}`: one histogram series per stage, its children bound
 * once, so that an observation is a bucket search and two additions.
 */
export function stageHistogram(registry: client.Registry): StageClock {
  const histogram = new client.Histogram({
    name: "appproxy_change_stage_seconds",
    help: "Where a change's time goes on this instance, by stage: parse, queue (group commit), lock, commit, answer, frame (commit to a worker's socket), ack (socket to the worker's ack).",
    labelNames: ["stage"],
    buckets: BUCKETS,
    registers: [registry],
  });
  const children = new Map(CHANGE_STAGES.map((stage) => [stage, histogram.labels({ stage })]));
  return { observe: (stage, seconds) => children.get(stage)!.observe(seconds) };
}

/**
 * A committed change's times on the committer's clock (performance.now()), for the stages its
 * HTTP answer closes: `parse` (from when the request arrived) and `answer`.
 */
export class ChangeTiming {
  constructor(
    private readonly clock: StageClock,
    readonly submittedAt: number,
    readonly committedAt: number,
  ) {}

  /** The answer is being written; `receivedAt` is when its request arrived, if known. */
  answered(receivedAt: number | undefined, waited: boolean): void {
    if (receivedAt !== undefined)
      this.clock.observe("parse", (this.submittedAt - receivedAt) / 1000);
    if (!waited) this.clock.observe("answer", (performance.now() - this.committedAt) / 1000);
  }
}
