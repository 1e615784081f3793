// charts.js: small line charts drawn as SVG with DOM calls only (no inline
// style, so the dashboard's Content-Security-Policy holds).

const SVG = "http://www.w3.org/2000/svg";

/** A fixed-length series of [time ms, value|null] samples. */
export class Series {
  constructor(windowMs) {
    this.windowMs = windowMs;
    this.points = [];
  }

  push(t, v) {
    this.points.push([t, v]);
    const from = t - this.windowMs;
    while (this.points.length && this.points[0][0] < from) this.points.shift();
  }

  last() {
    for (let i = this.points.length - 1; i >= 0; i--) if (this.points[i][1] !== null) return this.points[i][1];
    return null;
  }
}

/**
 * Draws series into the <figure> fig (replacing its previous <svg>) and writes
 * label into its caption's .value.
 */
export function drawChart(fig, series, label, emptyText = "no data yet") {
  const w = 300, h = 80, pad = 4, top = 16; // top: room for the scale label
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const pts = series.points.filter((p) => p[1] !== null);
  if (pts.length < 2) {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", "8");
    t.setAttribute("y", String(h / 2));
    t.setAttribute("class", "empty");
    t.textContent = pts.length ? "collecting samples..." : emptyText;
    svg.appendChild(t);
  } else {
    // The x axis spans the samples held (at most the window), so a fresh
    // dashboard fills its charts at once.
    const t1 = series.points[series.points.length - 1][0];
    const t0 = series.points[0][0];
    const span = Math.max(1, t1 - t0);
    const peak = Math.max(...pts.map((p) => p[1]));
    const max = peak > 0 ? peak : 1;
    const coords = pts.map(([t, v]) => {
      const x = ((t - t0) / span) * w;
      const y = h - pad - (v / max) * (h - pad - top);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", coords.join(" "));
    svg.appendChild(line);
    const scale = document.createElementNS(SVG, "text");
    scale.setAttribute("x", String(w - 4));
    scale.setAttribute("y", "12");
    scale.setAttribute("text-anchor", "end");
    scale.setAttribute("class", "empty");
    scale.textContent = `max ${fmtNum(peak)}`;
    svg.appendChild(scale);
  }
  const old = fig.querySelector("svg");
  if (old) old.replaceWith(svg);
  else fig.appendChild(svg);
  fig.querySelector(".value").textContent = label;
}

export function fmtNum(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (Number.isInteger(v)) return String(v);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 1) return v.toFixed(1);
  return v.toFixed(2);
}
