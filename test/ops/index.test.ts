import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness } from "../support/harness.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

interface ServiceIndex {
  name: string;
  version: string;
  description: string;
  links: Record<string, string>;
  docs: Record<string, string>;
}

const REPO = path.resolve(import.meta.dirname, "../..");
const PACKAGE = JSON.parse(readFileSync(path.join(REPO, "package.json"), "utf8")) as {
  name: string;
  version: string;
  description: string;
};

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

describe("GET /", () => {
  it("says what the service is, without a token", async () => {
    const res = await h.anonymous.get<ServiceIndex>("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.body).toMatchObject({
      name: PACKAGE.name,
      version: PACKAGE.version,
      description: PACKAGE.description,
    });
  });

  it("links to paths the coordinator serves", async () => {
    const { body } = await h.anonymous.get<ServiceIndex>("/");
    expect(body.links).toMatchObject({ openapi: "/openapi.json", status: "/status" });
    for (const [name, link] of Object.entries(body.links)) {
      const res = await h.anonymous.get(link);
      // /status asks for the admin token; every other link is open to anyone.
      expect([name, res.status]).toEqual([name, name === "status" ? 401 : 200]);
    }
    expect((await h.admin.get(body.links.status!)).status).toBe(200);
  });

  it("names docs that exist in the package", async () => {
    const { body } = await h.anonymous.get<ServiceIndex>("/");
    expect(body.docs).toHaveProperty("api", "docs/api.md");
    for (const file of Object.values(body.docs)) {
      expect([file, existsSync(path.join(REPO, file))]).toEqual([file, true]);
    }
  });
});
