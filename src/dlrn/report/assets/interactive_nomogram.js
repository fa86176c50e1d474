// Interactive nomogram (DLRN or RadN): points and risk computed in the page from the fitted
// coefficients, with exactly the arithmetic of dlrn.nomogram.Nomogram.points.
(function () {
  "use strict";

  function xbeta(scale, value) {
    if (scale.kind === "categorical") {
      return scale.coefficient[String(value)];
    }
    return scale.coefficient * Number(value);
  }

  function axis(scale) {
    const values = scale.values.map(function (v) { return xbeta(scale, v); });
    return { min: Math.min.apply(null, values), max: Math.max.apply(null, values) };
  }

  // Nomogram._derive_axes: points per lp unit and the lp at zero points.
  function derive(state) {
    const axes = state.scales.map(axis);
    const ranges = axes.map(function (a) { return a.max - a.min; });
    const pointsPerUnit = state.params.maxscale / Math.max.apply(null, ranges);
    let sumOfMinima = 0;
    axes.forEach(function (a) { sumOfMinima += a.min; });
    return { axes: axes, pointsPerUnit: pointsPerUnit, lpAtZero: state.intercept + sumOfMinima };
  }

  // Nomogram.points for one patient: {name: value} -> points, total, lp, probability.
  function compute(state, values) {
    const derived = derive(state);
    const points = {};
    let total = 0;
    state.scales.forEach(function (scale, i) {
      points[scale.name] = (xbeta(scale, values[scale.name]) - derived.axes[i].min) *
        derived.pointsPerUnit;
      total += points[scale.name];
    });
    const lp = derived.lpAtZero + total / derived.pointsPerUnit;
    const probability = lp >= 0 ? 1 / (1 + Math.exp(-lp)) : Math.exp(lp) / (1 + Math.exp(lp));
    return { points: points, total: total, linearPredictor: lp, probability: probability };
  }

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function isNoYes(scale) {
    return scale.kind === "categorical" && scale.values.length === 2 &&
      scale.values[0] === "no" && scale.values[1] === "yes";
  }

  function valueOf(input) {
    return input.type === "checkbox" ? (input.checked ? "yes" : "no") : input.value;
  }

  function control(scale, words) {
    if (scale.kind === "continuous") {
      const low = Math.min.apply(null, scale.values);
      const high = Math.max.apply(null, scale.values);
      return element("input", { type: "range", min: low, max: high, step: "any",
        value: (low + high) / 2, "data-predictor": scale.name });
    }
    if (isNoYes(scale)) {  // a multilabel token or a missing indicator: a checkbox
      return element("input", { type: "checkbox", "data-predictor": scale.name });
    }
    const select = element("select", { "data-predictor": scale.name });
    scale.values.forEach(function (v) {
      select.appendChild(element("option", { value: String(v) }, words[String(v)] || String(v)));
    });
    return select;
  }

  // Set the controls to a patient's values ({predictor: value}; others stay), then update.
  // A number outside a slider's range is held at its end (the nomogram's axis).
  function show(root, values) {
    root.querySelectorAll("input[data-predictor], select[data-predictor]").forEach(function (input) {
      const name = input.getAttribute("data-predictor");
      if (!(name in values) || values[name] === null) { return; }
      if (input.type === "checkbox") { input.checked = String(values[name]) === "yes"; }
      else { input.value = String(values[name]); }
    });
    root.dispatchEvent(new Event("input"));
  }

  function format(value, digits) { return Number(value).toFixed(digits); }

  function build(root) {
    const state = JSON.parse(root.querySelector("script.dlrn-nomogram-state").textContent);
    const labels = state.labels || {};
    const table = element("table", { class: "dlrn-nomogram-table" });
    const head = element("tr");
    ["Predictor", "Value", "Points", ""].forEach(function (t) { head.appendChild(element("th", {}, t)); });
    table.appendChild(head);
    const rows = {};
    state.scales.forEach(function (scale) {
      const row = element("tr");
      const input = control(scale, (state.levels || {})[scale.name] || {});
      const shown = element("output", { class: "dlrn-value" });
      const points = element("output", { class: "dlrn-points", "data-predictor": scale.name });
      const bar = element("div", { class: "dlrn-bar" });
      const cell = element("td");
      cell.appendChild(input);
      cell.appendChild(shown);
      const title = scale.group ? scale.group + ": " + scale.label : scale.name;  // a token
      row.appendChild(element("td", {}, labels[scale.name] || title));
      row.appendChild(cell);
      const pointsCell = element("td", { class: "dlrn-num" });
      pointsCell.appendChild(points);
      row.appendChild(pointsCell);
      const barCell = element("td", { class: "dlrn-bar-cell" });
      barCell.appendChild(bar);
      row.appendChild(barCell);
      table.appendChild(row);
      rows[scale.name] = { input: input, shown: shown, points: points, bar: bar };
    });
    const summary = element("p", { class: "dlrn-summary" });
    const total = element("output", { class: "dlrn-total" });
    const lp = element("output", { class: "dlrn-lp" });
    const risk = element("output", { class: "dlrn-risk" });
    summary.append("Total points ", total, " · linear predictor ", lp, " · risk ", risk);
    root.appendChild(table);
    root.appendChild(summary);

    function update() {
      const values = {};
      state.scales.forEach(function (scale) { values[scale.name] = valueOf(rows[scale.name].input); });
      const result = compute(state, values);
      state.scales.forEach(function (scale) {
        const row = rows[scale.name];
        const p = result.points[scale.name];
        row.shown.textContent = scale.kind === "continuous" ? " " + format(values[scale.name], 3) : "";
        row.points.textContent = format(p, 1);
        row.points.setAttribute("data-value", String(p));
        row.bar.style.width = Math.max(0, Math.min(100, p / state.params.maxscale * 100)) + "%";
      });
      total.textContent = format(result.total, 1);
      total.setAttribute("data-value", String(result.total));
      lp.textContent = format(result.linearPredictor, 3);
      lp.setAttribute("data-value", String(result.linearPredictor));
      risk.textContent = format(100 * result.probability, 1) + " %";
      risk.setAttribute("data-value", String(result.probability));
    }
    root.addEventListener("input", update);
    root.addEventListener("change", update);
    show(root, state.start || {});
    root.setAttribute("data-ready", "true");
  }

  window.dlrnNomogram = { compute: compute, show: show };
  document.querySelectorAll(".dlrn-interactive-nomogram:not([data-ready])").forEach(build);
})();
