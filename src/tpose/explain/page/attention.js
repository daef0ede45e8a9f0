"use strict";
(() => {
  const DATA = JSON.parse(document.getElementById("tpose-data").textContent);
  const $ = (id) => document.getElementById(id);
  const ALPHA = DATA.alpha;
  const bytes = (s) => {
    const b = atob(s), o = new Uint8Array(b.length);
    for (let i = 0; i < b.length; i++) o[i] = b.charCodeAt(i);
    return o;
  };
  const LUT = bytes(DATA.lut);
  const canvases = [$("image"), $("dep"), $("aff")];
  const S = { view: 0, layer: 0, head: 0, thr: DATA.threshold, pinned: null, hover: null, P: null, drawn: 0 };
  const cache = new Map();

  async function inflate(raw) {
    if (typeof DecompressionStream === "undefined") {
      throw new Error("this browser lacks DecompressionStream; use a current Chrome, Firefox or Safari");
    }
    const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  function loadImage(src) {
    return new Promise((ok, fail) => {
      const im = new Image();
      im.onload = () => ok(im);
      im.onerror = () => fail(new Error("cannot decode the embedded crop"));
      im.src = src;
    });
  }
  function axis(n, g) {  // OpenCV INTER_LINEAR sampling positions
    const i0 = new Int32Array(n), i1 = new Int32Array(n), f = new Float32Array(n);
    for (let o = 0; o < n; o++) {
      let s = (o + 0.5) * g / n - 0.5;
      if (s < 0) s = 0;
      if (s > g - 1) s = g - 1;
      const a = Math.floor(s);
      i0[o] = a; i1[o] = Math.min(a + 1, g - 1); f[o] = s - a;
    }
    return { i0, i1, f };
  }
  async function prepare(v) {
    if (cache.has(v)) return cache.get(v);
    const view = DATA.views[v];
    const raw = bytes(view.q);
    const q = view.compressed ? await inflate(raw) : raw;
    const rm = bytes(view.rowmax);
    const rowmax = new Float32Array(rm.buffer, 0, rm.length / 4);
    const img = await loadImage(view.image);
    const [H, W] = view.size, [gh, gw] = view.grid, L = gh * gw;
    if (q.length !== view.layers * view.heads.length * L * L) throw new Error("attention data has the wrong size");
    const off = document.createElement("canvas"); off.width = W; off.height = H;
    const octx = off.getContext("2d"); octx.drawImage(img, 0, 0);
    const base = octx.getImageData(0, 0, W, H).data;
    const P = { view, q, rowmax, img, base, H, W, gh, gw, L, xs: axis(W, gw), ys: axis(H, gh) };
    cache.set(v, P);
    return P;
  }
  function rowValues(P, l, h, i) {
    const r = (l * P.view.heads.length + h) * P.L + i, s = P.rowmax[r] / 255, out = new Float32Array(P.L);
    for (let j = 0; j < P.L; j++) out[j] = P.q[r * P.L + j] * s;
    return out;
  }
  function colValues(P, l, h, j) {
    const base = (l * P.view.heads.length + h) * P.L, out = new Float32Array(P.L);
    for (let i = 0; i < P.L; i++) out[i] = P.q[(base + i) * P.L + j] * P.rowmax[base + i] / 255;
    return out;
  }
  function drawStar(ctx, x, y, r) {
    ctx.beginPath();
    for (let k = 0; k < 10; k++) {
      const a = -Math.PI / 2 + k * Math.PI / 5, rr = k % 2 ? r * 0.42 : r;
      const px = x + rr * Math.cos(a), py = y + rr * Math.sin(a);
      if (k) ctx.lineTo(px, py); else ctx.moveTo(px, py);
    }
    ctx.closePath(); ctx.fillStyle = "#fff"; ctx.fill(); ctx.lineWidth = 1; ctx.strokeStyle = "#000"; ctx.stroke();
  }
  function paint(canvas, P, vals, star) {
    const { W, H, gw, xs, ys, base } = P, up = new Float32Array(W * H);
    let max = 0, rawMax = 0, kept = 0;
    for (let y = 0; y < H; y++) {
      const y0 = ys.i0[y] * gw, y1 = ys.i1[y] * gw, fy = ys.f[y];
      for (let x = 0; x < W; x++) {
        const x0 = xs.i0[x], x1 = xs.i1[x], fx = xs.f[x];
        const top = vals[y0 + x0] * (1 - fx) + vals[y0 + x1] * fx, bot = vals[y1 + x0] * (1 - fx) + vals[y1 + x1] * fx;
        let v = top * (1 - fy) + bot * fy;
        if (v > rawMax) rawMax = v;
        if (S.thr > 0 && v <= S.thr) v = 0; else kept++;
        up[y * W + x] = v;
        if (v > max) max = v;
      }
    }
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(W, H), d = img.data;
    for (let p = 0; p < W * H; p++) {
      const k = max > 0 ? Math.round(up[p] / max * 255) : 0;
      for (let c = 0; c < 3; c++) d[4 * p + c] = Math.round((1 - ALPHA) * base[4 * p + c] + ALPHA * LUT[3 * k + c]);
      d[4 * p + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    if (star) drawStar(ctx, star[0], star[1], Math.max(4, W / 32));
    return `max ${rawMax.toExponential(2)}, ${(100 * kept / (W * H)).toFixed(0)}% above threshold`;
  }
  function drawMain(P, token) {
    const ctx = $("image").getContext("2d"), kps = P.view.keypoints;
    ctx.drawImage(P.img, 0, 0);
    ctx.lineWidth = Math.max(1, P.W / 128);
    for (const [a, b] of P.view.skeleton) {
      ctx.strokeStyle = `rgb(${kps[b].color.join(",")})`;
      ctx.beginPath(); ctx.moveTo(kps[a].x, kps[a].y); ctx.lineTo(kps[b].x, kps[b].y); ctx.stroke();
    }
    kps.forEach((kp, k) => {
      ctx.beginPath(); ctx.arc(kp.x, kp.y, Math.max(2, P.W / 64), 0, 2 * Math.PI);
      ctx.fillStyle = `rgb(${kp.color.join(",")})`; ctx.fill();
      ctx.strokeStyle = k === S.pinned ? "#ff0" : "#fff"; ctx.stroke();
    });
    if (token !== null && token !== undefined) {
      const cw = P.W / P.gw, ch = P.H / P.gh;
      ctx.strokeStyle = "#ff0"; ctx.lineWidth = 1;
      ctx.strokeRect((token % P.gw) * cw, Math.floor(token / P.gw) * ch, cw, ch);
    }
  }
  function tokenAt(x, y) {
    const P = S.P;
    const c = Math.min(P.gw - 1, Math.max(0, Math.floor(x * P.gw / P.W)));
    const r = Math.min(P.gh - 1, Math.max(0, Math.floor(y * P.gh / P.H)));
    return r * P.gw + c;
  }
  function target() {
    if (S.pinned !== null) {
      const kp = S.P.view.keypoints[S.pinned];
      return { token: kp.token, star: [kp.x, kp.y], what: `keypoint ${kp.name} (pinned, score ${kp.score})` };
    }
    return S.hover;
  }
  function render() {
    const P = S.P, t = target();
    drawMain(P, t ? t.token : null);
    document.querySelectorAll("#kps button").forEach((b, k) => b.classList.toggle("on", k === S.pinned));
    if (!t) {
      for (const c of [$("dep"), $("aff")]) c.getContext("2d").drawImage(P.img, 0, 0);
      $("info").textContent = "move the pointer over the crop";
      return;
    }
    const dep = paint($("dep"), P, rowValues(P, S.layer, S.head, t.token), t.star);
    const aff = paint($("aff"), P, colValues(P, S.layer, S.head, t.token), t.star);
    S.drawn++;
    const r = Math.floor(t.token / P.gw), c = t.token % P.gw;
    $("info").textContent = `${t.what}: token (row ${r}, col ${c}) = #${t.token} of ${P.gh}x${P.gw}` +
      (P.view.pool > 1 ? ` (pooled ${P.view.pool}x${P.view.pool})` : "") +
      ` | layer ${S.layer}, ${P.view.heads[S.head]}` +
      ` | dependency: ${dep} | affected: ${aff}`;
  }
  function cropPoint(ev, canvas) {
    const b = canvas.getBoundingClientRect();
    return [(ev.clientX - b.left) * S.P.W / b.width, (ev.clientY - b.top) * S.P.H / b.height, S.P.W / b.width];
  }
  function nearestKeypoint(x, y, perPixel) {
    let best = null, bestD = Math.max(4, 12 * perPixel);
    S.P.view.keypoints.forEach((kp, k) => {  // the nearest within reach; the first of equals
      const d = Math.hypot(kp.x - x, kp.y - y);
      if (d < bestD || (best === null && d === bestD)) { best = k; bestD = d; }
    });
    return best;
  }
  function pin(k) { S.pinned = k; render(); }
  async function showView(v) {
    S.view = v; S.P = await prepare(v); S.pinned = null; S.hover = null;
    const P = S.P, zoom = Math.max(1, Math.round(288 / P.W));
    for (const c of canvases) {
      c.width = P.W; c.height = P.H;
      c.style.width = `${P.W * zoom}px`; c.style.height = `${P.H * zoom}px`;
    }
    $("layer").innerHTML = ""; $("head").innerHTML = ""; $("kps").innerHTML = "";
    for (let l = 0; l < P.view.layers; l++) {
      $("layer").add(new Option(l === P.view.layers - 1 ? `${l} (last)` : `${l}`, l));
    }
    P.view.heads.forEach((name, h) => $("head").add(new Option(name, h)));
    S.layer = P.view.layers - 1; S.head = 0;
    $("layer").value = S.layer; $("head").value = 0;
    P.view.keypoints.forEach((kp, k) => {
      const b = document.createElement("button"); b.type = "button"; b.textContent = kp.name;
      b.addEventListener("click", () => pin(S.pinned === k ? null : k));
      $("kps").appendChild(b);
    });
    render();
  }
  async function main() {
    DATA.views.forEach((v, i) => $("view").add(new Option(v.label, i)));
    $("view").disabled = DATA.views.length < 2;
    $("thr").value = S.thr;
    $("view").addEventListener("change", (e) => showView(Number(e.target.value)).catch(fail));
    $("layer").addEventListener("change", (e) => { S.layer = Number(e.target.value); render(); });
    $("head").addEventListener("change", (e) => { S.head = Number(e.target.value); render(); });
    $("thr").addEventListener("input", (e) => {
      const t = Number(e.target.value);
      if (Number.isFinite(t) && t >= 0) { S.thr = t; render(); }
    });
    $("unpin").addEventListener("click", () => pin(null));
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") pin(null); });
    for (const c of canvases) {
      c.addEventListener("pointermove", (ev) => {
        if (!S.P) return;
        const [x, y] = cropPoint(ev, c);
        S.hover = { token: tokenAt(x, y), star: [x, y], what: "pointer" };
        if (S.pinned === null) render();
      });
      c.addEventListener("click", (ev) => {
        if (!S.P) return;
        const [x, y, perPixel] = cropPoint(ev, c), k = nearestKeypoint(x, y, perPixel);
        pin(k !== null && k !== S.pinned ? k : null);
      });
    }
    await showView(0);
    window.tpose = {
      state: S, tokenAt, render,
      rowValues: (l, h, i) => Array.from(rowValues(S.P, l, h, i)),
      colValues: (l, h, j) => Array.from(colValues(S.P, l, h, j)),
    };
    window.tposeReady = true;
  }
  function fail(err) {
    window.tposeError = String(err && err.message || err);
    $("info").textContent = "error: " + window.tposeError;
    $("info").className = "error";
  }
  main().catch(fail);
})();
