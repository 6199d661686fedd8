import { describe, expect, it } from "vitest";
import { parseWorkerCliArgs } from "../../src/client/cli-args.js";
import { changeLines } from "../../src/client/cli-output.js";
import { makeRoute } from "./route-factory.js";

describe("parseWorkerCliArgs", () => {
  it("builds a port-mode registration with defaults", () => {
    const parsed = parseWorkerCliArgs(["--name", "w1", "--port-range", "10200:10299"], {
      REGISTRATION_TOKEN: "t",
    });
    expect(parsed).toEqual({
      ok: true,
      config: {
        coordinatorUrl: "http://127.0.0.1:6030",
        registrationToken: "t",
        registration: {
          name: "w1",
          advertised_host: "127.0.0.1",
          frontend_mode: "port",
          port_range: [10200, 10299],
          tls: false,
          dedicated: false,
        },
      },
    });
  });

  it("takes the worker token of an earlier registration from --worker-token or WORKER_TOKEN", () => {
    const args = ["--name", "w1", "--port-range", "10200:10299", "--token", "t"];
    const fromFlag = parseWorkerCliArgs([...args, "--worker-token", "wt1.a"], {
      WORKER_TOKEN: "b",
    });
    expect(fromFlag.ok && fromFlag.config.workerToken).toBe("wt1.a");
    const fromEnv = parseWorkerCliArgs(args, { WORKER_TOKEN: "wt1.b" });
    expect(fromEnv.ok && fromEnv.config.workerToken).toBe("wt1.b");
  });

  it("builds a wildcard registration with every option", () => {
    const parsed = parseWorkerCliArgs(
      [
        "--name=w2",
        "--wildcard-domain=apps.example.com",
        "--traffic-port=8443",
        "--token=x",
        "--host=w2.example.com",
        "--protocols=http,h2",
        "--modes=inference",
        "--labels=gpu=a100,zone=eu",
        "--dedicated",
        "--capacity=20",
        "--tls",
        "--coordinator=https://c.example.com",
      ],
      {},
    );
    expect(parsed.ok && parsed.config.registration).toEqual({
      name: "w2",
      advertised_host: "w2.example.com",
      frontend_mode: "wildcard",
      wildcard_domain: "apps.example.com",
      wildcard_traffic_port: 8443,
      protocols: ["http", "h2"],
      modes: ["inference"],
      labels: { gpu: "a100", zone: "eu" },
      dedicated: true,
      capacity: 20,
      tls: true,
    });
  });

  it("collects every problem", () => {
    const parsed = parseWorkerCliArgs(
      ["--name", "W 1", "--port-range", "300:200", "--protocols", "smtp", "--traffic-port", "80"],
      {},
    );
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.problems.length).toBe(5);
  });

  it("refuses unknown flags and positionals", () => {
    expect(parseWorkerCliArgs(["--name", "w1", "--bogus"], { REGISTRATION_TOKEN: "t" }).ok).toBe(
      false,
    );
    expect(parseWorkerCliArgs(["w1"], { REGISTRATION_TOKEN: "t" }).ok).toBe(false);
  });

  it("answers --help", () => {
    expect(parseWorkerCliArgs(["--help"], {})).toEqual({ ok: false, help: true, problems: [] });
  });
});

describe("changeLines", () => {
  it("prints one line per deleted and upserted route", () => {
    const route = makeRoute({ port: 10201, url: "http://w1:10201/" });
    expect(changeLines({ from: 41, to: 42, upserts: [route], deletes: ["gone"] })).toEqual([
      "v42 -gone",
      `v42 +${route.id} app=jupyter protocol=http port=10201 url=http://w1:10201/ upstreams=10.0.0.5:8888`,
    ]);
  });
});
