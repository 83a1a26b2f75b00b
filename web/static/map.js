// hexride live map: draws the viewer feed (asyncapi.yaml, map.* messages) on
// a Canvas 2D over the city's streets and H3 grid. No libraries, no tiles:
// everything it needs comes from this gateway.
"use strict";
(function () {
  const DRIVER_COLORS = ["#6b7785", "#35d07f", "#ffd23f", "#3fa9ff", "#ff5cad"];
  const DRIVER_NAMES = ["unavailable", "available", "offered", "en route to pickup", "on trip"];
  const TRIP_STATES = [null, "REQUESTED", "OFFERED", "ACCEPTED", "ARRIVED", "IN_PROGRESS"];
  const ENDED_STATES = ["COMPLETED", "CANCELLED", "NO_DRIVERS"];
  // Hexagon ramp: counts 1, 2–3, 4–7, 8–15, 16+.
  const HEX_BINS = [1, 2, 4, 8, 16];
  const HEX_RAMPS = {
    supply: ["rgba(53,208,127,0.14)", "rgba(53,208,127,0.26)", "rgba(53,208,127,0.40)", "rgba(53,208,127,0.55)", "rgba(53,208,127,0.72)"],
    demand: ["rgba(255,122,69,0.18)", "rgba(255,122,69,0.32)", "rgba(255,122,69,0.46)", "rgba(255,122,69,0.62)", "rgba(255,122,69,0.80)"],
  };
  const M_PER_DEG_LAT = 111320;

  const canvas = document.getElementById("map");
  const ctx = canvas.getContext("2d", { alpha: false });
  const $ = (id) => document.getElementById(id);

  // ---- projection: WGS84 → local metres (x east, y north) around an origin.
  let lat0 = null, lng0 = 0, mPerDegLng = M_PER_DEG_LAT;
  function setOrigin(lat, lng) {
    lat0 = lat; lng0 = lng; mPerDegLng = M_PER_DEG_LAT * Math.cos(lat * Math.PI / 180);
  }
  const X = (lng) => (lng - lng0) * mPerDegLng;
  const Y = (lat) => (lat - lat0) * M_PER_DEG_LAT;

  // ---- view: screen = (world - centre) * scale, y flipped.
  const view = { cx: 0, cy: 0, scale: 0.05, fitted: false };
  let W = 0, H = 0, DPR = 1;
  function resize() {
    DPR = window.devicePixelRatio || 1;
    W = canvas.clientWidth; H = canvas.clientHeight;
    canvas.width = Math.round(W * DPR); canvas.height = Math.round(H * DPR);
  }
  const sx = (x) => (x - view.cx) * view.scale + W / 2;
  const sy = (y) => (view.cy - y) * view.scale + H / 2;
  function fit(minX, minY, maxX, maxY) {
    if (!(maxX > minX) || !(maxY > minY)) return;
    view.cx = (minX + maxX) / 2; view.cy = (minY + maxY) / 2;
    view.scale = 0.92 * Math.min(W / (maxX - minX), H / (maxY - minY));
    view.fitted = true;
  }

  // ---- drivers, by slot, in typed arrays: 10,000 markers move every frame.
  let cap = 0;
  let st, lat5, lng5, fx, fy, tx, ty, t0, dur, last;
  function grow(n) {
    if (n <= cap) return;
    let c = Math.max(1024, cap * 2);
    while (c < n) c *= 2;
    const g = (A, old) => { const a = new A(c); if (old) a.set(old); return a; };
    const stNew = new Int8Array(c).fill(-1);
    if (st) stNew.set(st);
    st = stNew;
    lat5 = g(Int32Array, lat5); lng5 = g(Int32Array, lng5);
    fx = g(Float64Array, fx); fy = g(Float64Array, fy); tx = g(Float64Array, tx); ty = g(Float64Array, ty);
    t0 = g(Float64Array, t0); dur = g(Float32Array, dur); last = g(Float64Array, last);
    cap = c;
  }
  grow(1024);
  let maxSlot = -1;
  // The displayed position of a driver at time now (interpolated).
  function posAt(i, now, out) {
    const d = dur[i];
    let k = d > 0 ? (now - t0[i]) / d : 1;
    if (k > 1) k = 1; else if (k < 0) k = 0;
    out[0] = fx[i] + (tx[i] - fx[i]) * k;
    out[1] = fy[i] + (ty[i] - fy[i]) * k;
  }
  const tmp = [0, 0];
  // moveTo starts a glide from where the marker is drawn now to its new
  // position, over about the time since its previous update: the next update
  // usually arrives just as the glide ends, so motion looks continuous.
  function moveTo(i, now, animate) {
    const x = X(lng5[i] / 1e5), y = Y(lat5[i] / 1e5);
    if (animate && st[i] >= 0) {
      posAt(i, now, tmp);
      fx[i] = tmp[0]; fy[i] = tmp[1];
      dur[i] = Math.min(5000, Math.max(250, now - last[i]));
    } else {
      fx[i] = x; fy[i] = y; dur[i] = 0;
    }
    tx[i] = x; ty[i] = y; t0[i] = now; last[i] = now;
  }
  function setDriver(slot, la, ln, state, now) {
    grow(slot + 1);
    const known = st[slot] >= 0;
    lat5[slot] = la; lng5[slot] = ln;
    moveTo(slot, now, known);
    st[slot] = state;
    if (slot > maxSlot) maxSlot = slot;
  }

  // ---- trips, cells, figures.
  const trips = new Map(); // slot → {state, driver, px, py, dx, dy}
  const cells = [];        // index → Path2D in world metres
  const cellCentre = [];   // index → [x, y]
  const counts = new Map(); // cell index → [supply, demand]
  let stats = null, hexRes = 8;
  let layer = "supply";
  let city = null; // {streets: Path2D, arterials: Path2D, grid: Path2D}

  function addCells(list) {
    for (const c of list) {
      const p = new Path2D();
      let mx = 0, my = 0;
      const n = (c.length - 1) / 2;
      for (let k = 0; k < n; k++) {
        const x = X(c[2 + 2 * k] / 1e5), y = Y(c[1 + 2 * k] / 1e5);
        if (k === 0) p.moveTo(x, y); else p.lineTo(x, y);
        mx += x; my += y;
      }
      p.closePath();
      cells[c[0]] = p;
      cellCentre[c[0]] = [mx / n, my / n];
    }
  }
  function setTrip(a, i, now) {
    trips.set(a[i], {
      state: a[i + 1], driver: a[i + 2],
      px: X(a[i + 4] / 1e5), py: Y(a[i + 3] / 1e5), dx: X(a[i + 6] / 1e5), dy: Y(a[i + 5] / 1e5),
    });
  }

  // ---- the feed.
  const feed = { frames: 0, bytes: 0, snapshots: 0, tick: 0, lastTick: 0 };
  function applyFrame(m, now) {
    if (lat0 === null) {
      // No city geometry: centre on the first thing the feed places.
      if (m.drivers.length) setOrigin(m.drivers[1] / 1e5, m.drivers[2] / 1e5);
      else if (m.trips.length) setOrigin(m.trips[3] / 1e5, m.trips[4] / 1e5);
      else if (m.cells.length) setOrigin(m.cells[0][1] / 1e5, m.cells[0][2] / 1e5);
      else if (m.type === "map.delta" && m.moved.length) { ws.close(4000, "resync"); return; }
    }
    if (m.type === "map.snapshot") {
      feed.snapshots++;
      st.fill(-1); maxSlot = -1; trips.clear(); counts.clear();
      hexRes = m.res; $("hex-res").textContent = String(hexRes);
    } else if (m.type === "map.delta") {
      if (m.tick !== feed.tick + 1) {
        // The server sends a snapshot to a viewer that missed a frame, so
        // this means a bug: start over with a fresh snapshot.
        ws.close(4000, "out of step");
        return;
      }
      const mv = m.moved;
      for (let i = 0; i < mv.length; i += 3) {
        const s = mv[i];
        lat5[s] += mv[i + 1]; lng5[s] += mv[i + 2];
        moveTo(s, now, true);
      }
      for (const s of m.drivers_gone) st[s] = -1;
      for (const s of m.trips_gone) trips.delete(s);
    } else {
      return;
    }
    feed.tick = m.tick;
    addCells(m.cells);
    const d = m.drivers;
    for (let i = 0; i < d.length; i += 4) setDriver(d[i], d[i + 1], d[i + 2], d[i + 3], now);
    for (let i = 0; i < m.trips.length; i += 7) setTrip(m.trips, i, now);
    for (let i = 0; i < m.hex.length; i += 3) {
      if (m.hex[i + 1] === 0 && m.hex[i + 2] === 0) counts.delete(m.hex[i]);
      else counts.set(m.hex[i], [m.hex[i + 1], m.hex[i + 2]]);
    }
    if (m.hex.length || m.type === "map.snapshot") hexVersion++;
    stats = m.stats;
    if (!view.fitted && m.type === "map.snapshot") fitToDrivers();
  }
  function fitToDrivers() {
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (let i = 0; i <= maxSlot; i++) {
      if (st[i] < 0) continue;
      minX = Math.min(minX, tx[i]); maxX = Math.max(maxX, tx[i]);
      minY = Math.min(minY, ty[i]); maxY = Math.max(maxY, ty[i]);
    }
    if (minX < Infinity) fit(minX - 500, minY - 500, maxX + 500, maxY + 500);
  }

  let ws = null, token = null, pendingInspect = new Map(), inspectSeq = 0, backoff = 500;
  function setStatus(text, cls) { const s = $("status"); s.textContent = text; s.className = "status " + (cls || ""); }
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/v1/ws?token=" + encodeURIComponent(token));
    ws.onopen = () => { backoff = 500; setStatus("live", "live"); };
    ws.onmessage = (e) => {
      feed.frames++; feed.bytes += e.data.length; meter.bytes += e.data.length;
      let m;
      try { m = JSON.parse(e.data); } catch (err) { setStatus("bad frame from server", "bad"); return; }
      if (m.type === "map.snapshot" || m.type === "map.delta") applyFrame(m, performance.now());
      else if (m.type === "map.detail" || m.type === "error") answer(m);
    };
    ws.onclose = (e) => {
      setStatus("disconnected (" + (e.reason || e.code) + "); reconnecting…", "bad");
      feed.tick = 0;
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  }

  // ---- details on click.
  let selected = null; // {kind, slot, detail}
  function inspect(kind, slot) {
    if (!ws || ws.readyState !== 1) return;
    const id = "i" + (++inspectSeq);
    pendingInspect.set(id, { kind, slot });
    ws.send(JSON.stringify({ type: "map.inspect", id, kind, slot }));
  }
  function answer(m) {
    const q = pendingInspect.get(m.id);
    if (!q) return;
    pendingInspect.delete(m.id);
    if (!selected || selected.kind !== q.kind || selected.slot !== q.slot) return;
    if (m.type === "error") {
      selected.detail = null;
      showDetail(q.kind === "driver" ? "Driver" : "Trip", "<p>" + esc(m.message) + "</p>");
      return;
    }
    selected.detail = m;
    if (m.driver) {
      const d = m.driver;
      showDetail("Driver " + d.driver_id, table([
        ["state", DRIVER_NAMES[["unavailable", "available", "offered", "en_route", "on_trip"].indexOf(d.state)] || d.state],
        ["available", d.available ? "yes" : "no"],
        ["position", d.position.lat.toFixed(5) + ", " + d.position.lng.toFixed(5)],
        ["speed", d.speed_mps != null ? (d.speed_mps * 3.6).toFixed(0) + " km/h" : "–"],
        ["last ping", d.last_ping.slice(11, 23)],
        ["trip", d.trip_id || (d.offer_trip_id ? "offered " + d.offer_trip_id : "–")],
      ]) + history(d.history), "driver-" + d.driver_id);
    } else if (m.trip) {
      const t = m.trip;
      showDetail("Trip " + t.trip_id, table([
        ["state", t.state], ["version", String(t.version)], ["driver", t.driver_id || "–"],
        ["requested", t.requested_at.slice(11, 23)],
        ["pickup", t.pickup.lat.toFixed(5) + ", " + t.pickup.lng.toFixed(5)],
        ["drop-off", t.dropoff.lat.toFixed(5) + ", " + t.dropoff.lng.toFixed(5)],
      ]) + history(t.history), "trip-" + t.trip_id);
    }
  }
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  const table = (rows) => "<table>" + rows.map((r) => "<tr><td>" + esc(r[0]) + "</td><td>" + esc(r[1]) + "</td></tr>").join("") + "</table>";
  const history = (h) => "<h2>Recent history</h2><ol>" + h.slice().reverse().map((e) => "<li>" + esc(e.at.slice(11, 19)) + " " + esc(e.what) + "</li>").join("") + "</ol>";
  function showDetail(title, html, key) {
    $("detail").hidden = false;
    $("detail-title").textContent = title;
    $("detail-body").innerHTML = html;
    $("detail").dataset.key = key || "";
  }
  setInterval(() => { if (selected) inspect(selected.kind, selected.slot); }, 2000);

  // pick finds what is drawn nearest the click, within 10 px: a driver, or a
  // trip by its pickup or drop-off.
  function pick(mx, my) {
    const now = performance.now();
    let best = null, bestD = 10 * 10;
    for (let i = 0; i <= maxSlot; i++) {
      if (st[i] < 0) continue;
      posAt(i, now, tmp);
      const dx = sx(tmp[0]) - mx, dy = sy(tmp[1]) - my, d = dx * dx + dy * dy;
      if (d < bestD) { bestD = d; best = { kind: "driver", slot: i }; }
    }
    for (const [slot, t] of trips) {
      for (const [x, y] of [[t.px, t.py], [t.dx, t.dy]]) {
        const dx = sx(x) - mx, dy = sy(y) - my, d = dx * dx + dy * dy;
        if (d < bestD) { bestD = d; best = { kind: "trip", slot }; }
      }
    }
    return best;
  }

  // ---- drawing.
  const perf = { frames: 0, intervals: [], lastTs: 0, drawMs: [], drawnDrivers: 0, drawnHex: 0, drawnTrips: 0 };
  const meter = { bytes: 0, since: performance.now(), kbps: 0, fps: 0, frames: 0 };
  const byState = [[], [], [], [], []];
  let px = new Float32Array(1024), py = new Float32Array(1024);
  const bg = document.createElement("canvas"), bgctx = bg.getContext("2d", { alpha: false });
  let bgKey = "", hexVersion = 0;
  function drawBackground(w, h) {
    if (bg.width !== w || bg.height !== h) { bg.width = w; bg.height = h; }
    const c = bgctx;
    c.setTransform(1, 0, 0, 1, 0, 0);
    c.fillStyle = "#0b1118";
    c.fillRect(0, 0, w, h);
    c.setTransform(view.scale * DPR, 0, 0, -view.scale * DPR, (W / 2 - view.cx * view.scale) * DPR, (H / 2 + view.cy * view.scale) * DPR);
    const px1 = 1 / view.scale; // one CSS pixel in metres
    let hexN = 0;
    if (layer !== "off") {
      const ramp = HEX_RAMPS[layer], k = layer === "supply" ? 0 : 1;
      for (const [i, cnt] of counts) {
        const n = cnt[k];
        if (!n || !cells[i]) continue;
        let b = 0;
        while (b + 1 < HEX_BINS.length && n >= HEX_BINS[b + 1]) b++;
        c.fillStyle = ramp[b];
        c.fill(cells[i]);
        hexN++;
      }
    }
    perf.drawnHex = hexN;
    if (city) {
      c.lineWidth = px1;
      c.strokeStyle = "rgba(120,150,180,0.16)";
      c.stroke(city.grid);
      c.strokeStyle = "#1f2c3a"; c.lineWidth = 1.2 * px1; c.stroke(city.streets);
      c.strokeStyle = "#34485e"; c.lineWidth = 2.6 * px1; c.stroke(city.arterials);
    }
  }
  // Many markers are written as pixels into a layer of their own and put
  // on the screen in one putImageData: without a GPU, rasterising 10,000
  // antialiased squares through the canvas every frame cost more than the
  // frame budget (26–27 fps measured here with one path of squares, 42–44
  // fps with this; docs/map.md).
  const DOTS_ABOVE = 3000;
  const dots = document.getElementById("dots"), dctx = dots.getContext("2d");
  let dimg = null, dbuf = null, dotsShown = false;
  const DOT_RGBA = DRIVER_COLORS.map((hex) => {
    const v = parseInt(hex.slice(1), 16);
    return (0xff << 24 | (v & 0xff) << 16 | (v >> 8 & 0xff) << 8 | v >> 16) >>> 0; // little-endian RGBA
  });
  function drawDots(on) {
    if (!on) {
      if (dotsShown) { dctx.clearRect(0, 0, dots.width, dots.height); dotsShown = false; }
      return;
    }
    const w = canvas.width, h = canvas.height;
    if (!dimg || dimg.width !== w || dimg.height !== h) {
      dots.width = w; dots.height = h;
      dimg = dctx.createImageData(w, h);
      dbuf = new Uint32Array(dimg.data.buffer);
    }
    dbuf.fill(0);
    const half = Math.max(1, Math.round(2 * DPR));
    for (let s = 0; s < byState.length; s++) {
      const c = DOT_RGBA[s];
      for (const i of byState[s]) {
        const x = Math.round(px[i] * DPR), y = Math.round(py[i] * DPR);
        const x0 = Math.max(0, x - half), x1 = Math.min(w, x + half), y1 = Math.min(h, y + half);
        for (let yy = Math.max(0, y - half); yy < y1; yy++) dbuf.fill(c, yy * w + x0, yy * w + x1);
      }
    }
    dctx.putImageData(dimg, 0, 0);
    dotsShown = true;
  }
  function draw(ts) {
    const t = performance.now();
    if (perf.lastTs) perf.intervals.push(ts - perf.lastTs);
    if (perf.intervals.length > 2000) perf.intervals.splice(0, 1000);
    perf.lastTs = ts; perf.frames++; meter.frames++;
    const w = canvas.width, h = canvas.height;
    if (lat0 === null) {
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = "#0b1118";
      ctx.fillRect(0, 0, w, h);
    } else {
      // The background (hexagons, grid, streets) changes only when the view
      // or the counts do (at most four times a second): it is drawn into its
      // own canvas then, and each frame copies it in one drawImage and
      // draws only what moves.
      const key = [view.cx, view.cy, view.scale, w, h, layer, hexVersion, city !== null].join();
      if (key !== bgKey) { drawBackground(w, h); bgKey = key; }
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.drawImage(bg, 0, 0);
      const px1 = 1 / view.scale;
      ctx.setTransform(view.scale * DPR, 0, 0, -view.scale * DPR, (W / 2 - view.cx * view.scale) * DPR, (H / 2 + view.cy * view.scale) * DPR);
      // Trips: driver → pickup → drop-off.
      let tripN = 0;
      ctx.lineWidth = 1.5 * px1;
      for (const tr of trips.values()) {
        if (tr.state < 3) continue;
        let ox = tr.px, oy = tr.py;
        if (tr.driver >= 0 && st[tr.driver] >= 0) { posAt(tr.driver, t, tmp); ox = tmp[0]; oy = tmp[1]; }
        ctx.beginPath();
        if (tr.state === 5) {
          ctx.strokeStyle = "rgba(255,92,173,0.75)";
          ctx.moveTo(ox, oy); ctx.lineTo(tr.dx, tr.dy); ctx.stroke();
        } else {
          ctx.strokeStyle = "rgba(63,169,255,0.85)";
          ctx.moveTo(ox, oy); ctx.lineTo(tr.px, tr.py); ctx.stroke();
          ctx.beginPath(); ctx.strokeStyle = "rgba(63,169,255,0.3)";
          ctx.moveTo(tr.px, tr.py); ctx.lineTo(tr.dx, tr.dy); ctx.stroke();
        }
        tripN++;
      }
      perf.drawnTrips = tripN;
      if (selected && selected.detail && selected.detail.driver && selected.detail.driver.trail.length > 1) {
        const tr = selected.detail.driver.trail;
        ctx.beginPath(); ctx.strokeStyle = "rgba(255,210,63,0.6)"; ctx.lineWidth = 2 * px1;
        tr.forEach((p, k) => (k ? ctx.lineTo(X(p.lng), Y(p.lat)) : ctx.moveTo(X(p.lng), Y(p.lat))));
        ctx.stroke();
      }
      ctx.setTransform(DPR, 0, 0, DPR, 0, 0);
      // Waiting requests: rings at the pickup; drop-offs of active trips: small squares.
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#ff7a45";
      ctx.beginPath();
      for (const tr of trips.values()) {
        if (tr.state > 2) continue;
        const x = sx(tr.px), y = sy(tr.py);
        ctx.moveTo(x + 5, y); ctx.arc(x, y, 5, 0, 2 * Math.PI);
      }
      ctx.stroke();
      ctx.fillStyle = "rgba(255,255,255,0.55)";
      for (const tr of trips.values()) {
        if (tr.state < 3) continue;
        ctx.fillRect(sx(tr.dx) - 2, sy(tr.dy) - 2, 4, 4);
      }
      // Drivers: one path per state (few fills for 10,000 markers).
      if (px.length <= maxSlot) { px = new Float32Array(cap); py = new Float32Array(cap); }
      for (const a of byState) a.length = 0;
      let n = 0;
      for (let i = 0; i <= maxSlot; i++) {
        const s = st[i];
        if (s < 0) continue;
        posAt(i, t, tmp);
        const x = sx(tmp[0]), y = sy(tmp[1]);
        px[i] = x; py[i] = y;
        if (x < -5 || y < -5 || x > W + 5 || y > H + 5) continue;
        byState[s].push(i);
        n++;
      }
      perf.drawnDrivers = n;
      const r = 3.5;
      for (let s = 0; s < byState.length; s++) {
        const list = byState[s];
        if (!list.length) continue;
        if (n > DOTS_ABOVE) continue;
        ctx.fillStyle = DRIVER_COLORS[s];
        ctx.beginPath();
        for (const i of list) { ctx.moveTo(px[i] + r, py[i]); ctx.arc(px[i], py[i], r, 0, 2 * Math.PI); }
        ctx.fill();
      }
      drawDots(n > DOTS_ABOVE);
      if (selected) {
        let x = null, y = null;
        if (selected.kind === "driver" && st[selected.slot] >= 0) { x = px[selected.slot]; y = py[selected.slot]; }
        else if (selected.kind === "trip" && trips.has(selected.slot)) { const tr = trips.get(selected.slot); x = sx(tr.px); y = sy(tr.py); }
        if (x !== null) {
          ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 2;
          ctx.beginPath(); ctx.arc(x, y, 9, 0, 2 * Math.PI); ctx.stroke();
        }
      }
    }
    perf.drawMs.push(performance.now() - t);
    if (perf.drawMs.length > 2000) perf.drawMs.splice(0, 1000);
    requestAnimationFrame(draw);
  }

  // ---- panel.
  function renderPanel() {
    const now = performance.now(), secs = (now - meter.since) / 1000;
    if (secs >= 1) {
      meter.kbps = meter.bytes / 1024 / secs; meter.fps = meter.frames / secs;
      meter.bytes = 0; meter.frames = 0; meter.since = now;
    }
    $("feed").textContent = "feed " + meter.kbps.toFixed(1) + " KB/s · " + meter.fps.toFixed(0) + " fps · tick " + feed.tick;
    if (!stats) return;
    $("f-drivers").textContent = stats.drivers_online;
    $("f-available").textContent = stats.drivers_available;
    $("f-open").textContent = stats.open_requests;
    $("f-matches").textContent = stats.matches_1m;
    $("f-p50").textContent = stats.offer_samples ? stats.offer_p50_ms.toFixed(1) + " ms" : "–";
    $("f-p99").textContent = stats.offer_samples ? stats.offer_p99_ms.toFixed(1) + " ms" : "–";
    let html = "";
    for (const s of TRIP_STATES.slice(1)) html += "<dt>" + s + "</dt><dd>" + (stats.active[s] || 0) + "</dd>";
    for (const s of ENDED_STATES) html += "<dt>" + s + " <small>(1 min)</small></dt><dd>" + (stats.ended_1m[s] || 0) + "</dd>";
    $("f-trips").innerHTML = html;
  }
  function legendItem(color, label, ring) {
    const li = document.createElement("li"), sw = document.createElement("i");
    if (ring) { sw.style.border = "2px solid " + color; sw.style.boxSizing = "border-box"; } else sw.style.background = color;
    li.append(sw, document.createTextNode(label));
    return li;
  }
  // Built with the DOM, not HTML strings: the CSP forbids inline styles.
  function legends() {
    const ld = $("legend-drivers");
    ld.replaceChildren(...DRIVER_NAMES.map((n, i) => legendItem(DRIVER_COLORS[i], n)), legendItem("#ff7a45", "waiting request", true));
    const lh = $("legend-hex");
    if (layer === "off") { lh.replaceChildren(legendItem("transparent", "layer off")); return; }
    const ramp = HEX_RAMPS[layer], what = layer === "demand" ? "open requests per cell" : "available drivers per cell";
    const head = document.createElement("li");
    head.className = "what";
    head.textContent = what;
    lh.replaceChildren(head, ...HEX_BINS.map((b, i) => {
      const hi = i + 1 < HEX_BINS.length ? HEX_BINS[i + 1] - 1 : null;
      return legendItem(ramp[i], hi === null ? b + "+" : hi === b ? String(b) : b + "–" + hi);
    }));
  }

  // ---- input.
  let drag = null;
  canvas.addEventListener("mousedown", (e) => { drag = { x: e.clientX, y: e.clientY, cx: view.cx, cy: view.cy, moved: false }; });
  window.addEventListener("mousemove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; canvas.classList.add("dragging"); }
    view.cx = drag.cx - dx / view.scale; view.cy = drag.cy + dy / view.scale;
  });
  window.addEventListener("mouseup", (e) => {
    if (!drag) return;
    const wasDrag = drag.moved;
    drag = null; canvas.classList.remove("dragging");
    if (wasDrag) return;
    const r = canvas.getBoundingClientRect();
    const hit = pick(e.clientX - r.left, e.clientY - r.top);
    selected = hit ? { kind: hit.kind, slot: hit.slot, detail: null } : null;
    if (hit) inspect(hit.kind, hit.slot); else $("detail").hidden = true;
  });
  function zoomAt(f, mx, my) {
    const wx = view.cx + (mx - W / 2) / view.scale, wy = view.cy - (my - H / 2) / view.scale;
    view.scale = Math.min(20, Math.max(0.002, view.scale * f));
    view.cx = wx - (mx - W / 2) / view.scale; view.cy = wy + (my - H / 2) / view.scale;
  }
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  $("zoom-in").onclick = () => zoomAt(1.5, W / 2, H / 2);
  $("zoom-out").onclick = () => zoomAt(1 / 1.5, W / 2, H / 2);
  for (const b of document.querySelectorAll(".toggle button")) {
    b.onclick = () => {
      layer = b.dataset.layer;
      for (const o of document.querySelectorAll(".toggle button")) o.classList.toggle("on", o === b);
      legends();
    };
  }
  window.addEventListener("resize", resize);

  // ---- start: city geometry, a viewer token, the feed.
  async function getToken() {
    const m = /[#&]token=([^&]+)/.exec(location.hash);
    if (m) return decodeURIComponent(m[1]);
    // Development auth mints a token for anyone; without it, open the page
    // with #token=<a viewer token> (hexride token -role viewer -sub you).
    const r = await fetch("/v1/dev/token", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ role: "viewer", sub: "map-" + Math.random().toString(36).slice(2, 10) }),
    });
    if (!r.ok) throw new Error("no viewer token: open this page with #token=<viewer token>");
    return (await r.json()).token;
  }
  async function loadCity() {
    const r = await fetch("/map/city");
    if (!r.ok) throw new Error("city geometry: HTTP " + r.status);
    const c = await r.json();
    if (!c.center) return;
    setOrigin(c.center.lat, c.center.lng);
    const streets = new Path2D(), arterials = new Path2D(), grid = new Path2D();
    for (const s of c.streets) {
      const p = s[4] ? arterials : streets;
      p.moveTo(X(s[1]), Y(s[0])); p.lineTo(X(s[3]), Y(s[2]));
    }
    for (const loop of c.grid) {
      for (let k = 0; k < loop.length; k += 2) {
        if (k === 0) grid.moveTo(X(loop[1]), Y(loop[0])); else grid.lineTo(X(loop[k + 1]), Y(loop[k]));
      }
      grid.closePath();
    }
    city = { streets, arterials, grid };
    const b = c.bounds;
    fit(X(b.west), Y(b.south), X(b.east), Y(b.north));
  }

  // A small surface for tests and operators' consoles.
  window.hexride = {
    ready: false,
    drivers() {
      const out = [];
      for (let i = 0; i <= maxSlot; i++) if (st[i] >= 0) out.push({ slot: i, state: st[i], lat: lat5[i] / 1e5, lng: lng5[i] / 1e5 });
      return out;
    },
    screenOf(slot) { posAt(slot, performance.now(), tmp); const r = canvas.getBoundingClientRect(); return { x: r.left + sx(tmp[0]), y: r.top + sy(tmp[1]) }; },
    trips() {
      const r = canvas.getBoundingClientRect(), out = [];
      for (const [slot, t] of trips) out.push({ slot, state: TRIP_STATES[t.state], pickup: { x: r.left + sx(t.px), y: r.top + sy(t.py) }, dropoff: { x: r.left + sx(t.dx), y: r.top + sy(t.dy) } });
      return out;
    },
    drawn() { return { drivers: perf.drawnDrivers, hex: perf.drawnHex, trips: perf.drawnTrips, cells: cells.length, counts: counts.size }; },
    feed() { return { frames: feed.frames, bytes: feed.bytes, snapshots: feed.snapshots, tick: feed.tick }; },
    stats() { return stats; },
    // measure reports drawing and feed figures over ms milliseconds.
    measure(ms) {
      const f0 = perf.frames, b0 = feed.bytes, n0 = feed.frames, s0 = feed.snapshots, start = performance.now();
      perf.intervals.length = 0; perf.drawMs.length = 0;
      return new Promise((resolve) => setTimeout(() => {
        const secs = (performance.now() - start) / 1000;
        const iv = perf.intervals.slice().sort((a, b) => a - b), dm = perf.drawMs.slice().sort((a, b) => a - b);
        const q = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.floor(p * a.length))] : 0);
        resolve({
          seconds: secs, fps: (perf.frames - f0) / secs,
          frameP50Ms: q(iv, 0.5), frameP95Ms: q(iv, 0.95), frameMaxMs: iv.length ? iv[iv.length - 1] : 0,
          drawP50Ms: q(dm, 0.5), drawP95Ms: q(dm, 0.95),
          feedBytesPerSec: (feed.bytes - b0) / secs, feedFramesPerSec: (feed.frames - n0) / secs,
          snapshots: feed.snapshots - s0, drivers: perf.drawnDrivers,
        });
      }, ms));
    },
  };

  resize();
  legends();
  requestAnimationFrame(draw);
  setInterval(renderPanel, 500);
  (async () => {
    try {
      await loadCity();
      token = await getToken();
      connect();
      window.hexride.ready = true;
    } catch (err) {
      setStatus(String(err.message || err), "bad");
    }
  })();
})();
