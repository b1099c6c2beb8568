// Typed errors carrying the API's error code.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AuthenticationError,
  BadRequestError,
  NotFoundError,
  PayloadTooLargeError,
  RefportApiError,
  RefportError,
  Refport,
  ValidationError,
} from "../dist/index.js";
import { BASE_URL, client, newProgram } from "./helpers.mjs";

const rp = client();

test("401: a wrong key is an AuthenticationError with code unauthorized", async () => {
  const bad = new Refport({ apiKey: "rp_live_nope", baseUrl: BASE_URL });
  await assert.rejects(bad.programs.list(), (e) => {
    assert.ok(e instanceof AuthenticationError);
    assert.ok(e instanceof RefportApiError);
    assert.ok(e instanceof RefportError);
    assert.equal(e.status, 401);
    assert.equal(e.code, "unauthorized");
    assert.equal(e.method, "GET");
    assert.equal(e.path, "/api/v1/programs");
    assert.match(e.message, /unauthorized/);
    return true;
  });
});

test("404: an unknown id is a NotFoundError with code not_found", async () => {
  await assert.rejects(rp.programs.get("prog_0000000000000000000000000"), (e) => e instanceof NotFoundError && e.code === "not_found");
  await assert.rejects(rp.partners.get("../programs"), (e) => e instanceof NotFoundError, "path segments are escaped");
});

test("400: an unknown field is a BadRequestError with code invalid_request; nothing is written", async () => {
  const p = await newProgram(rp);
  await assert.rejects(rp.programs.update(p.id, { name: "x", colour: "red" }), (e) => e instanceof BadRequestError && e.status === 400 && e.code === "invalid_request");
  assert.equal((await rp.programs.get(p.id)).name, p.name);
});

test("422: an invalid value is a ValidationError naming the field", async () => {
  await assert.rejects(
    rp.programs.create({ name: "Bad", domains: ["go.bad.test"], allowed_hosts: ["bad.test"], payout_currency: "xyz" }),
    (e) => {
      assert.ok(e instanceof ValidationError);
      assert.equal(e.status, 422);
      assert.equal(e.code, "invalid_currency");
      assert.equal(e.field, "payout_currency");
      assert.equal(e.body.field, "payout_currency");
      return true;
    },
  );
});

test("413: a body over 64 KiB is a PayloadTooLargeError", async () => {
  const p = await newProgram(rp);
  await assert.rejects(rp.programs.update(p.id, { description: "x".repeat(70_000) }), (e) => e instanceof PayloadTooLargeError && e.code === "payload_too_large");
});

test("the client refuses to start without a key or a base URL", () => {
  const saved = { k: process.env.REFPORT_API_KEY, u: process.env.REFPORT_BASE_URL };
  delete process.env.REFPORT_API_KEY;
  delete process.env.REFPORT_BASE_URL;
  try {
    assert.throws(() => new Refport({ baseUrl: BASE_URL }), /apiKey/);
    assert.throws(() => new Refport({ apiKey: "k" }), /baseUrl/);
    process.env.REFPORT_API_KEY = "rp_live_x";
    process.env.REFPORT_BASE_URL = BASE_URL + "/";
    assert.equal(new Refport().http.baseUrl, BASE_URL);
  } finally {
    for (const [k, v] of [["REFPORT_API_KEY", saved.k], ["REFPORT_BASE_URL", saved.u]]) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});
