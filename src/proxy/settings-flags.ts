/**
 * `npm run worker -- --flag value`: every setting of the worker's environment as a command-line
 * flag, named after its variable (WORKER_NAME is `--worker-name`). A flag wins over the variable.
 */
import { parseArgs } from "node:util";
import { SETTING_VARIABLES } from "./settings.js";

export type SettingFlagsParse =
  | {
      kind: "settings";
      /** The settings the flags give, by variable name, to lay over the environment. */
      values: Record<string, string>;
    }
  | { kind: "help" }
  | { kind: "error"; problems: string[] };

/** Settings whose flag may stand alone, meaning `true` (`--dedicated`). */
const SWITCHES = new Set(["DEDICATED"]);

/** A setting's flag: its variable's name in lower case with `-` for `_`. */
export function flagOf(variable: string): string {
  return `--${variable.toLowerCase().replaceAll("_", "-")}`;
}

const OPTIONS = Object.fromEntries([
  ...SETTING_VARIABLES.map(({ name }) => [flagOf(name).slice(2), { type: "string" as const }]),
  ["help", { type: "boolean" as const, short: "h" }],
]) as Record<string, { type: "string" } | { type: "boolean"; short: string }>;

/** Reads the worker's command line: settings, `--help`, or what is wrong with it. */
export function parseSettingFlags(argv: readonly string[]): SettingFlagsParse {
  const args = argv.map((arg, i) => {
    const switched = SETTING_VARIABLES.find(
      ({ name }) => SWITCHES.has(name) && flagOf(name) === arg,
    );
    const next = argv[i + 1];
    return switched !== undefined && (next === undefined || next.startsWith("-"))
      ? `${arg}=true`
      : arg;
  });
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    return { kind: "error", problems: [describeArgsError(error)] };
  }
  if (values.help === true) return { kind: "help" };
  const settings: Record<string, string> = {};
  for (const { name } of SETTING_VARIABLES) {
    const value = values[flagOf(name).slice(2)];
    if (typeof value === "string") settings[name] = value;
  }
  return { kind: "settings", values: settings };
}

function describeArgsError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as NodeJS.ErrnoException).code;
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? "";
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown option ${quoted} (see --help)`;
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    return `unexpected argument "${quoted}": settings are --flag value (see --help)`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    return `${quoted.split(" ")[0] ?? quoted} needs a value (see --help)`;
  }
  return message;
}

/**
 * A settings problem with the flag named beside each variable the command line gave, so that
 * "WORKER_NAME: …" reads "WORKER_NAME (--worker-name): …" when it came from a flag.
 */
export function withFlagNames(problem: string, given: Record<string, string>): string {
  return problem.replace(/"?\b([A-Z][A-Z_]+[A-Z])\b"?/g, (match, name: string) =>
    name in given ? `${name} (${flagOf(name)})` : match,
  );
}

/** `--help`: every flag with its variable, meaning and default. */
export function settingsUsage(): string {
  const rows = SETTING_VARIABLES.map(({ name, description, defaultValue }) => {
    const flag = SWITCHES.has(name) ? `${flagOf(name)}[=true|false]` : `${flagOf(name)} <value>`;
    const fallback = defaultValue === undefined ? "" : ` (default ${defaultValue})`;
    return `  ${flag.padEnd(34)} ${name}: ${description}${fallback}`;
  });
  return [
    "usage: npm run worker -- [--flag <value> | --flag=<value>]...",
    "",
    "Every setting is a flag or an environment variable; a flag wins over its variable.",
    "",
    ...rows,
    `  ${"-h, --help".padEnd(34)} this text`,
    "",
    "npm run worker -- --print-table --help: the client that only prints its table.",
  ].join("\n");
}
