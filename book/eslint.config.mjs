// ESLint for the interactive figures' scripts (psanet_lite/viz/static/*.js) and the live
// explorable's (psanet_lite/export/explorable.js): `make lint-js`.
// Each script runs inside one closure that psanet_lite/viz/_embed.py render builds:
// "use strict", then ROOT (the figure's root element) and SPEC (its parsed data), then
// common.js, then the figure's own file. The globals below are what that closure provides.
import js from "@eslint/js";

const browser = {
  atob: "readonly",
  Blob: "readonly",
  DecompressionStream: "readonly",
  document: "readonly",
  Response: "readonly",
};
const closure = { ROOT: "readonly", SPEC: "readonly" };
const commonHelpers = {
  bytesFromBase64: "readonly",
  element: "readonly",
  fail: "readonly",
  floatsFromBase64: "readonly",
  inflate: "readonly",
  layout: "readonly",
  paintCodes: "readonly",
};

export default [
  js.configs.recommended,
  {
    files: ["psanet_lite/viz/static/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "script",
      globals: { ...browser, ...closure },
    },
    rules: { eqeqeq: "error", "no-var": "error", "prefer-const": "error" },
  },
  {
    files: ["psanet_lite/viz/static/*.js"],
    ignores: ["psanet_lite/viz/static/common.js"],
    languageOptions: { globals: commonHelpers },
  },
  {
    // A page script of its own; `ort` is the global onnxruntime-web's script defines.
    files: ["psanet_lite/export/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "script",
      globals: { ...browser, fetch: "readonly", performance: "readonly", URL: "readonly", window: "readonly" },
    },
    rules: { eqeqeq: "error", "no-var": "error", "prefer-const": "error" },
  },
];
