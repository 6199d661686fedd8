import { Router } from "express";

/** /healthz answers while the process serves; /readyz only while it can do its work. */
export function healthRouter(deps: { ready: () => Promise<boolean> }): Router {
  const router = Router();
  router.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  router.get("/readyz", async (_req, res) => {
    const ready = await deps.ready();
    res.status(ready ? 200 : 503).json({ status: ready ? "ready" : "not ready" });
  });
  return router;
}
