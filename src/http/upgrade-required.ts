import type { RequestHandler } from "express";
import { AppError } from "../errors.js";

/** The worker stream's path; it is served only as a WebSocket upgrade. */
export const STREAM_PATH = /^\/workers\/([0-9a-fA-F-]{36})\/stream$/;

export const upgradeRequired = (): AppError =>
  new AppError(
    426,
    "upgrade_required",
    "Upgrade Required",
    "This path is the worker stream: open it as a WebSocket upgrade.",
    { headers: { Upgrade: "websocket" } },
  );

/** A plain request of the stream path (no upgrade, or `Connection: Upgrade` alone) is 426. */
export const streamWithoutUpgrade: RequestHandler = (req, _res, next) => {
  if (STREAM_PATH.test(req.path)) throw upgradeRequired();
  next();
};
