import cron, { type ScheduledTask } from "node-cron";
import type { Logger } from "../logger.js";
import type { Reaper, ReaperRun } from "./reaper.js";

/**
 * Runs the reaper on its cron schedule, never overlapping itself. Reports each run's outcome:
 * "acted", "skipped" (another instance held the lock) or "failed".
 */
export class ReaperScheduler {
  private task: ScheduledTask | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly reaper: Reaper,
    private readonly expression: string,
    private readonly logger: Logger,
    private readonly observe: (outcome: string, run?: ReaperRun) => void = () => undefined,
  ) {}

  start(): void {
    this.task = cron.schedule(this.expression, () => this.tick(), {
      name: "reaper",
      noOverlap: true,
    });
  }

  /** One run now, unless one is under way. */
  async tick(): Promise<void> {
    if (this.running) return;
    const run = this.reaper.run().then(
      (result) => this.observe(result.acted ? "acted" : "skipped", result),
      (error: unknown) => {
        this.observe("failed");
        this.logger.warn("reaper run failed", { error: String(error) });
      },
    );
    this.running = run;
    try {
      await run;
    } finally {
      this.running = undefined;
    }
  }

  async stop(): Promise<void> {
    await this.task?.destroy();
    this.task = undefined;
    await this.running;
  }
}
