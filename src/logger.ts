import winston from "winston";

export type Logger = winston.Logger;

/** JSON lines on stdout. Callers never pass tokens or secrets in metadata. */
export function createLogger(level: string, silent = false): Logger {
  return winston.createLogger({
    level,
    silent,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console()],
  });
}
