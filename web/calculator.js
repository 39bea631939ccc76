// finegpt's memory calculator: the page's fields are read by Python (finegpt.calculator, in Pyodide), which
// answers with what `finegpt memory --json` prints; this file draws it. State lives in the URL hash.
import { loadPyodide } from "./pyodide/pyodide.mjs";

// [key, label, hint]; the keys and their defaults come from finegpt.calculator.DEFAULTS
const LAYOUT = [
  ["GPU", [["gpu", "GPU", "a preset (its memory as PyTorch sees it), or custom with its memory in GiB"],
    ["world_size", "GPUs", "how many GPUs train together (DDP, or FSDP below); figures are per GPU"],
    ["fsdp", "FSDP", "shard weights, gradients and optimizer states over the GPUs"]]],
  ["Model", [["n_layer", "layers", "transformer blocks"], ["n_head", "heads", "attention heads; must divide the width"],
    ["n_embd", "width", "the embedding size"], ["block_size", "block (context)", "tokens of context"],
    ["vocab_size", "vocab", "GPT-2's 50257 padded to 50304"], ["bias", "bias", "GPT-2: True; nanoGPT's config files: False"],
    ["dropout", "dropout", "0.0 for pretraining; masks cost memory"]]],
  ["Batch", [["batch_size", "micro-batch", "sequences per GPU per forward pass"],
    ["gradient_accumulation_steps", "accumulation", "micro-steps per optimizer step, total over all GPUs"],
    ["eval_batch_size", "eval micro-batch", "0: the same as the micro-batch"],
    ["max_iters", "iterations", "optimizer steps in the run: sets tokens and hours"]]],
  ["Run", [["dtype", "dtype", "auto: bf16 where the GPU has it, else fp16; pure_bf16 is a what-if"],
    ["compile", "torch.compile", "compiled runs keep fewer activations"],
    ["attention", "attention", "flash: PyTorch's SDPA, as the trainer runs; math is a what-if"],
    ["activation_checkpointing", "activation checkpointing", "recompute each block in backward: less memory, ~30 % more compute"],
    ["optimizer", "optimizer", "the trainer runs adamw_fused; the others are what-ifs"]]],
];
const BOOLS = ["True", "False"];
const GIB = 2 ** 30;
const $ = (id) => document.getElementById(id);
const t0 = performance.now();
let py, DEFAULTS, CHOICES, GPUS, last;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

function choicesOf(key) {
  if (key in CHOICES) return CHOICES[key];
  if (BOOLS.includes(DEFAULTS[key])) return BOOLS;
  return null;
}

function buildControls() {
  const form = $("controls");
  for (const [title, fields] of LAYOUT) {
    const set = el("fieldset", {}, el("legend", {}, title));
    for (const [key, label, hint] of fields) {
      const options = choicesOf(key);
      const input = options ? el("select", { id: `f-${key}`, name: key }) : el("input", { id: `f-${key}`, name: key, type: "text", inputmode: "decimal", size: 8 });
      for (const o of options || []) input.append(el("option", { value: o }, key === "gpu" && o in GPUS ? `${o} (${GPUS[o]} GiB)` : o));
      input.title = hint;
      const row = el("div", { class: "field", id: `row-${key}` }, el("label", { for: `f-${key}`, title: hint }, label), input);
      if (key === "gpu") row.append(el("input", { id: "f-gpu-gib", type: "text", inputmode: "decimal", size: 5, "aria-label": "custom GiB", placeholder: "GiB" }));
      row.append(el("code", { class: "key", title: hint }, key), el("span", { class: "error", id: `error-${key}` }));
      set.append(row);
    }
    form.append(set);
  }
  form.addEventListener("input", onChange);
  form.addEventListener("change", onChange);
}

// ---- state: the fields' texts <-> the controls <-> the URL hash -------------------------------------------

function readControls() {
  const texts = {};
  for (const key of Object.keys(DEFAULTS)) texts[key] = $(`f-${key}`).value.trim();
  if (texts.gpu === "custom") texts.gpu = `custom:${$("f-gpu-gib").value.trim()}`;
  return texts;
}

function setControl(key, text) {
  const input = $(`f-${key}`);
  if (!input) return;
  if (key === "gpu" && text.toLowerCase().startsWith("custom:")) {
    input.value = "custom";
    $("f-gpu-gib").value = text.slice(7);
  } else {
    // a value the drop-down lacks (a GPU named 'Tesla T4', 'maybe' for a bool) is added, and Python judges it
    if (input.tagName === "SELECT" && ![...input.options].some((o) => o.value === text)) input.append(el("option", { value: text }, text));
    input.value = text;
  }
  $("f-gpu-gib").hidden = $("f-gpu").value !== "custom";
}

function fromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const texts = { ...DEFAULTS };
  for (const [k, v] of params) if (k in DEFAULTS) texts[k] = v;
  return texts;
}

function toHash(texts) {
  const hash = "#" + new URLSearchParams(texts).toString().replaceAll("%3A", ":");
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

// ---- drawing ------------------------------------------------------------------------------------------

const gib = (bytes) => (bytes / GIB).toFixed(2);
const COLOURS = ["#4c72b0", "#55a868", "#8172b3", "#ccb974", "#64b5cd", "#937860", "#da8bc3", "#8c8c8c", "#c44e52", "#dd8452"];
const VERDICT_CLASS = { fits: "fits", tight: "tight", "out of memory": "oom" };

function drawBars(out) {
  const box = $("bars");
  box.replaceChildren();
  const totals = Object.values(out.bars).map((segs) => segs.reduce((s, [, b]) => s + b, 0));
  const gpuBytes = out.gpu ? out.gpu.memory_gib * GIB : 0;
  const scale = 100 / (Math.max(gpuBytes, ...totals) * 1.04);
  const colour = {};
  const legend = el("ul", { class: "legend" });
  for (const [mode, segs] of Object.entries(out.bars)) {
    const bar = el("div", { class: "bar", id: `bar-${mode}` });
    for (const [label, bytes, kind] of segs) {
      if (!(label in colour)) {
        colour[label] = kind === "allocated" ? COLOURS[Object.keys(colour).length % COLOURS.length] : "";
        legend.append(el("li", { class: kind }, el("span", { class: `swatch ${kind}`, style: `background:${colour[label]}` }), label));
      }
      bar.append(el("span", { class: `seg ${kind}`, title: `${label}: ${gib(bytes)} GiB`, style: `width:${bytes * scale}%;${colour[label] ? "background:" + colour[label] : ""}` }));
    }
    if (gpuBytes) bar.append(el("span", { class: "gpu-line", style: `left:${gpuBytes * scale}%`, title: `${out.gpu.name}: ${out.gpu.memory_gib.toFixed(2)} GiB` }));
    const peak = out.summary[mode];
    box.append(el("div", { class: "bar-row" }, el("span", { class: "bar-label" }, mode), bar, el("span", { class: "bar-value" }, `${peak.peak_gib.toFixed(2)} GiB`)));
  }
  if (gpuBytes) legend.append(el("li", {}, el("span", { class: "swatch gpu" }), `${out.gpu.name}: ${out.gpu.memory_gib.toFixed(2)} GiB`));
  box.append(legend);
}

function drawSummary(out) {
  const s = out.summary;
  const mode = s.compile ? "compiled" : "eager";
  const v = s[mode].verdict;
  $("verdict").className = v ? VERDICT_CLASS[v.status] || "" : "";
  $("verdict").replaceChildren(v ? el("strong", { class: "verdict-label" }, v.label) : el("strong", {}, "no GPU: no verdict"),
    v ? el("span", {}, ` (${mode}, peak ${s[mode].peak_gib.toFixed(2)} GiB allocated): ${v.text.replace(/^[^:]*: /, "")}`) : "");
  const rows = [["", "eager", "compiled"],
    ["peak (allocated)", ...["eager", "compiled"].map((m) => `${s[m].peak_gib.toFixed(2)} GiB (${s[m].peak_phase})`)],
    ["nvidia-smi shows", ...["eager", "compiled"].map((m) => s[m].nvidia_smi_range_gib.map((x) => x.toFixed(2)).join(" - ") + " GiB")],
    ["verdict", ...["eager", "compiled"].map((m) => (s[m].verdict ? s[m].verdict.label : "-"))],
    ["deciding term", ...["eager", "compiled"].map((m) => (s[m].verdict ? s[m].verdict.deciding : "-"))]];
  $("modes").replaceChildren(...rows.map((r, i) => el("tr", {}, ...r.map((c, j) => el(i === 0 || j === 0 ? "th" : "td", j === (mode === "eager" ? 1 : 2) && i ? { class: "this-run" } : {}, c)))));
  const numbers = [["parameters", `${(s.params / 1e6).toFixed(1)} M`], ["tokens per step", s.tokens_per_step.toLocaleString("en")],
    ["tokens per run", `${(s.tokens_per_run / 1e9).toFixed(2)} B = ${s.tokens_per_param.toFixed(0)} per parameter (Chinchilla: ${(s.chinchilla_tokens / 1e9).toFixed(2)} B)`]];
  if ("max_micro_batch" in s) numbers.push(["largest micro-batch", s.max_micro_batch ? `${s.max_micro_batch} (${mode})` : "none: does not fit at batch_size=1"]);
  if (s.plan) numbers.push(["same tokens per step", `batch_size=${s.plan.batch_size} x gradient_accumulation_steps=${s.plan.gradient_accumulation_steps}`]);
  if (s.hours) numbers.push(["hours", `${s.hours[0].toFixed(1)} - ${s.hours[1].toFixed(1)} h at ${(s.mfu_range[1] * 100).toFixed(0)}-${(s.mfu_range[0] * 100).toFixed(0)} % MFU (${mode})`]);
  $("numbers").replaceChildren(...numbers.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { id: `n-${k.replaceAll(" ", "-")}` }, v)]));
  $("notes").replaceChildren(...s.notes.map((n) => el("li", {}, n)));
}

function draw(out) {
  for (const e of document.querySelectorAll(".error")) e.textContent = "";
  for (const e of document.querySelectorAll(".field.bad")) e.classList.remove("bad");
  $("result").textContent = out.result;
  $("cli").textContent = out.cli;
  $("outputs").hidden = false;
  $("config-block").hidden = Boolean(out.error);
  if (out.error) {
    const where = out.error_field && $(`error-${out.error_field}`);
    if (where) {
      where.textContent = out.error;
      $(`row-${out.error_field}`).classList.add("bad");
    }
    $("verdict").className = "oom";
    $("verdict").replaceChildren(el("strong", {}, "error: "), out.error);
    for (const id of ["bars", "modes", "numbers", "notes", "config-text"]) $(id).replaceChildren();
    return;
  }
  drawBars(out);
  drawSummary(out);
  $("config-text").textContent = out.config_text;
}

// ---- events -------------------------------------------------------------------------------------------

function compute(texts) {
  const t = performance.now();
  const out = JSON.parse(py.page_json(JSON.stringify(texts)));
  last = out;
  draw(out);
  toHash(texts);
  void document.body.offsetHeight; // lay the page out now, so the time counts it
  return { ms: performance.now() - t, python_ms: out.python_ms };
}

function showRedraw({ ms, python_ms }) {
  const r = $("redraw-ms");
  r.dataset.ms = ms.toFixed(1);
  r.textContent = `last redraw ${ms.toFixed(1)} ms (Python ${python_ms.toFixed(1)} ms)`;
}

function onChange(event) {
  if (event.target.id === "f-gpu") $("f-gpu-gib").hidden = event.target.value !== "custom";
  showRedraw(compute(readControls()));
}

function loadTexts(texts) {
  for (const [k, v] of Object.entries(texts)) setControl(k, v);
  return compute(readControls());
}

async function loadGuide(name, text) {
  py.FS.mkdirTree("/configs");
  py.FS.writeFile(`/configs/${name}`, text);
  const [texts, notes] = JSON.parse(py.guide_json(`/configs/${name}`));
  showRedraw(loadTexts(texts));
  $("notes").append(...[`loaded configs/${name}`, ...notes].map((n) => el("li", {}, n)));
}

async function main() {
  const starting = loadPyodide({ indexURL: new URL("pyodide/", location.href).href });
  const site = await (await fetch("site.json")).json();
  const wheel = fetch(site.wheel).then((r) => r.arrayBuffer()); // while Pyodide starts
  const pyodide = await starting;
  const t1 = performance.now();
  pyodide.unpackArchive(await wheel, "wheel");
  const calc = pyodide.pyimport("finegpt.calculator");
  py = { page_json: calc.page_json, guide_json: calc.config_fields_json, FS: pyodide.FS };
  ({ defaults: DEFAULTS, choices: CHOICES, gpu_memory_gib: GPUS } = JSON.parse(calc.controls_json()));
  const t2 = performance.now();
  buildControls();
  $("guides").append("Load a config file: ");
  for (const [name, text] of Object.entries(site.configs)) {
    const button = el("button", { type: "button", class: "guide", title: `set every field from configs/${name}` }, name);
    button.addEventListener("click", () => loadGuide(name, text));
    $("guides").append(button);
  }
  const first = loadTexts(fromHash());
  window.addEventListener("hashchange", () => showRedraw(loadTexts(fromHash())));
  const t3 = performance.now();
  $("status").textContent = `Python by Pyodide ${pyodide.version} (MPL-2.0, the npm package pyodide), finegpt from ${site.wheel}.`;
  $("timing").replaceChildren(
    el("span", { id: "startup-ms", "data-ms": t3.toFixed(0) },
      `ready ${(t3 / 1000).toFixed(2)} s after the page opened: Pyodide ${((t1 - t0) / 1000).toFixed(2)} s, ` +
      `finegpt ${((t2 - t1) / 1000).toFixed(2)} s, first answer ${first.ms.toFixed(0)} ms. `),
    el("span", { id: "redraw-ms" }));
  showRedraw(first);
  document.body.dataset.ready = "1";
}

$("copy-config").addEventListener("click", async () => {
  const text = $("config-text").textContent;
  try {
    await navigator.clipboard.writeText(text);
    $("copied").textContent = "copied";
  } catch {
    getSelection().selectAllChildren($("config-text"));
    $("copied").textContent = "selected: press Ctrl+C";
  }
});

main().catch((e) => {
  $("status").textContent = `could not start Python: ${e}`;
  $("status").className = "error";
  throw e;
});
