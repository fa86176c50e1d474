/* The calculator's ROI editor (included in page.html; the page works without it, with a
   mask file). The image is shown as the server reads it (POST api/preview, any format
   the calculator accepts); the ROI is a raster at the image's own pixel grid, drawn with
   a polygon, a brush and an eraser (pointer events: mouse, pen and touch), with undo and
   clear, shown as an outline with a light fill so the lesion's margin stays visible.
   Predict sends what is on the canvas and only that: nothing on it asks for an ROI; a mask
   file left unchanged is sent as the mask file; any other drawing as a PNG at that grid
   (field "roi") with where it started (field "roi_source": the automatic proposal, as
   proposed or corrected, a mask file corrected, or drawn; the server checks "as proposed"
   against its own proposal). The answer replaces the previous one without leaving the
   page, so the image and the drawing stay.

   Coordinates are image pixels, origin at the top-left corner of the top-left pixel, x
   right, y down (DICOM SCOORD, the canvas): a pointer at CSS offset (u, v) in the canvas
   of CSS size (w, h) is at (u * width / w, v * height / h), whatever the display size.
   A closed polygon adds the pixels whose centre is inside it, decided with the server's
   rule and arithmetic (dlrn.serve.roi.polygon_mask: pnpoly's crossings). */
(function () {
  "use strict";
  const form = document.getElementById("case-form");
  const editor = document.getElementById("roi-editor");
  const canvas = document.getElementById("roi-canvas");
  const imageInput = document.getElementById("image-file");
  const maskInput = document.getElementById("mask-file");
  const status = document.getElementById("roi-status");
  const sizeInput = document.getElementById("brush-size");
  const sizeOutput = document.getElementById("brush-size-value");
  const roiValue = Number(canvas.dataset.roiValue);
  const UNDO_STEPS = 30;
  const CLOSE_DISTANCE = 12; // CSS pixels from the first point that close the polygon
  const OUTLINE = [255, 210, 0, 255];
  const FILL = [255, 210, 0, 45];
  const NOTHING = [0, 0, 0, 0];
  const SHOWN_PROBLEM = "The image or ROI could not be shown:";
  const HINTS = {
    polygon: "Polygon: click or tap points around the lesion; close it on the first point, " +
             "with Enter or with Close polygon.",
    brush: "Brush: drag over the image to add to the ROI.",
    eraser: "Eraser: drag over the image to remove from the ROI.",
  };
  const NO_ROI = "outline the lesion on the image (Polygon or Brush), or choose its mask " +
                 "file, then press Predict.";
  const state = {picture: null, width: 0, height: 0, roi: null, layer: null, layerPixels: null,
                 history: [], points: [], tool: "polygon", stroke: null, loading: null,
                 message: "", origin: null, original: null};

  /* How many pixel centres c + 0.5 (c = 0 .. width - 1) lie strictly left of x. */
  function centresLeftOf(x, width) {
    let count = Math.min(width, Math.max(0, Math.ceil(x - 0.5)));
    while (count > 0 && count - 0.5 >= x) count -= 1;
    while (count < width && count + 0.5 < x) count += 1;
    return count;
  }

  /* The polygon's pixels (1 inside), row by row: the crossings of each edge j -> i with
     the row of centres, as pnpoly computes them; a centre is inside when an odd number
     of crossings lie right of it. */
  function polygonMask(vertices, width, height) {
    const inside = new Uint8Array(width * height);
    const toggles = new Uint8Array(width + 1);
    const n = vertices.length;
    for (let row = 0; row < height; row += 1) {
      const cy = row + 0.5;
      let crossed = false;
      toggles.fill(0);
      for (let i = 0, j = n - 1; i < n; j = i, i += 1) {
        const xi = vertices[i][0], yi = vertices[i][1];
        const xj = vertices[j][0], yj = vertices[j][1];
        if ((yi > cy) !== (yj > cy)) {
          const crossing = (xj - xi) * (cy - yi) / (yj - yi) + xi;
          toggles[centresLeftOf(crossing, width)] ^= 1;
          crossed = true;
        }
      }
      let parity = 0;
      for (let column = width - 1; crossed && column >= 0; column -= 1) {
        parity ^= toggles[column + 1];
        inside[row * width + column] = parity;
      }
    }
    return inside;
  }
  window.dlrnPolygonMask = polygonMask; // the rule, reachable for checks against the server's

  function say(text) {
    status.textContent = text;
  }

  function describe() {
    let pixels = 0;
    if (state.roi) for (const value of state.roi) pixels += value;
    canvas.dataset.roiPixels = String(pixels);
    const open = state.points.length ? ` Open polygon: ${state.points.length} point(s).` : "";
    say(`${state.message} ROI: ${pixels.toLocaleString("en")} pixels.${open} ` +
        HINTS[state.tool]);
  }

  function showProblem(text, title = "The case could not be predicted:") {
    const box = document.createElement("div");
    box.className = "error";
    box.id = "error";
    box.setAttribute("role", "alert");
    const heading = document.createElement("strong");
    heading.textContent = title;
    box.append(heading, " ", text);
    const answer = document.getElementById("answer");
    answer.replaceChildren(box);
    answer.scrollIntoView({block: "nearest"});
  }

  function setPixel(index, value) {
    state.roi[index] = value;
  }

  /* An ROI pixel is on the outline when a 4-neighbour (or the image's edge) is outside. */
  function colourOf(x, y) {
    const {roi, width, height} = state;
    const index = y * width + x;
    if (!roi[index]) return NOTHING;
    const edge = x === 0 || y === 0 || x === width - 1 || y === height - 1 ||
      !roi[index - 1] || !roi[index + 1] || !roi[index - width] || !roi[index + width];
    return edge ? OUTLINE : FILL;
  }

  /* Recolour the rectangle (and the pixels around it, whose outline it may change). */
  function refreshLayer(x = 0, y = 0, width = state.width, height = state.height) {
    const x0 = Math.max(0, x - 1), y0 = Math.max(0, y - 1);
    const x1 = Math.min(state.width, x + width + 1), y1 = Math.min(state.height, y + height + 1);
    for (let row = y0; row < y1; row += 1) {
      for (let column = x0; column < x1; column += 1) {
        state.layerPixels.data.set(colourOf(column, row), 4 * (row * state.width + column));
      }
    }
    state.layer.getContext("2d").putImageData(state.layerPixels, 0, 0, x0, y0, x1 - x0, y1 - y0);
    render();
  }

  function redrawLayer() {
    refreshLayer();
  }

  function render() {
    const box = canvas.getBoundingClientRect();
    if (!state.picture || box.width === 0) return;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(box.width * ratio), height = Math.round(box.height * ratio);
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const context = canvas.getContext("2d");
    context.setTransform(width / state.width, 0, 0, height / state.height, 0, 0);
    context.imageSmoothingEnabled = false;
    context.clearRect(0, 0, state.width, state.height);
    context.drawImage(state.picture, 0, 0, state.width, state.height);
    context.drawImage(state.layer, 0, 0, state.width, state.height);
    drawOpenPolygon(context, state.width / box.width);
  }

  function drawOpenPolygon(context, cssPixel) {
    if (!state.points.length) return;
    context.lineWidth = 2 * cssPixel;
    context.strokeStyle = "#ffd200";
    context.fillStyle = "#ffd200";
    context.beginPath();
    state.points.forEach(([x, y], index) => (index ? context.lineTo(x, y) : context.moveTo(x, y)));
    context.stroke();
    state.points.forEach(([x, y], index) => {
      context.beginPath();
      context.arc(x, y, (index ? 3 : 6) * cssPixel, 0, 2 * Math.PI);
      context.fill();
    });
  }

  function imagePoint(event) {
    const box = canvas.getBoundingClientRect();
    const x = (event.clientX - box.left) * state.width / box.width;
    const y = (event.clientY - box.top) * state.height / box.height;
    return [Math.min(state.width, Math.max(0, x)), Math.min(state.height, Math.max(0, y))];
  }

  function remember() {
    state.message = "";  // the preview's advice, done with once the ROI is edited
    state.history.push({roi: state.roi.slice(), origin: state.origin});
    if (state.history.length > UNDO_STEPS) state.history.shift();
  }

  function addPoint(point) {
    const first = state.points[0];
    if (first && state.points.length >= 3) {
      const box = canvas.getBoundingClientRect();
      const distance = Math.hypot((point[0] - first[0]) * box.width / state.width,
                                  (point[1] - first[1]) * box.height / state.height);
      if (distance <= CLOSE_DISTANCE) {
        closePolygon();
        return;
      }
    }
    state.points.push(point);
    render();
    describe();
  }

  function closePolygon() {
    if (state.points.length < 3) {
      say("A polygon needs at least 3 points: place 3 or more points around the lesion.");
      return;
    }
    remember();
    polygonMask(state.points, state.width, state.height).forEach((value, index) => {
      if (value) setPixel(index, 1);
    });
    canvas.dataset.polygon = JSON.stringify(state.points);
    state.points = [];
    refreshLayer();
    describe();
  }

  /* Pixels whose centre lies within the brush's radius of the segment from a to b. */
  function paint(a, b, value) {
    const radius = Number(sizeInput.value) / 2;
    const x0 = Math.max(0, Math.floor(Math.min(a[0], b[0]) - radius));
    const x1 = Math.min(state.width - 1, Math.ceil(Math.max(a[0], b[0]) + radius));
    const y0 = Math.max(0, Math.floor(Math.min(a[1], b[1]) - radius));
    const y1 = Math.min(state.height - 1, Math.ceil(Math.max(a[1], b[1]) + radius));
    const dx = b[0] - a[0], dy = b[1] - a[1], length2 = dx * dx + dy * dy;
    for (let y = y0; y <= y1; y += 1) {
      for (let x = x0; x <= x1; x += 1) {
        const cx = x + 0.5, cy = y + 0.5;
        const t = length2 ? Math.min(1, Math.max(0, ((cx - a[0]) * dx + (cy - a[1]) * dy) / length2)) : 0;
        const ex = a[0] + t * dx - cx, ey = a[1] + t * dy - cy;
        if (ex * ex + ey * ey <= radius * radius) setPixel(y * state.width + x, value);
      }
    }
    if (x1 >= x0 && y1 >= y0) refreshLayer(x0, y0, x1 - x0 + 1, y1 - y0 + 1);
  }

  function chooseTool(tool) {
    state.tool = tool;
    for (const button of editor.querySelectorAll("[data-tool]")) {
      button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
    }
    describe();
  }

  function undo() {
    if (state.points.length) {
      state.points.pop();
      render();
    } else if (state.history.length) {
      ({roi: state.roi, origin: state.origin} = state.history.pop());
      redrawLayer();
    }
    describe();
  }

  function clear() {
    remember();
    state.origin = null;  // what is drawn next is drawn by hand
    state.roi.fill(0);
    state.points = [];
    redrawLayer();
    describe();
  }

  function decoded(base64) {
    return new Promise((resolve, reject) => {
      const picture = new Image();
      picture.onload = () => resolve(picture);
      picture.onerror = () => reject(new Error("the image preview could not be shown"));
      picture.src = "data:image/png;base64," + base64;
    });
  }

  function pixelsOf(picture) {
    const scratch = document.createElement("canvas");
    scratch.width = state.width;
    scratch.height = state.height;
    const context = scratch.getContext("2d");
    context.drawImage(picture, 0, 0);
    return context.getImageData(0, 0, state.width, state.height).data;
  }

  async function show(answer) {
    const picture = await decoded(answer.image_png_base64);
    const roi = answer.roi_png_base64 ? await decoded(answer.roi_png_base64) : null;
    Object.assign(state, {picture, width: answer.width, height: answer.height, history: [],
                          points: [], message: answer.message, origin: null, original: null});
    state.roi = new Uint8Array(state.width * state.height);
    state.layer = document.createElement("canvas");
    state.layer.width = state.width;
    state.layer.height = state.height;
    state.layerPixels = state.layer.getContext("2d").createImageData(state.width, state.height);
    if (roi) {
      const pixels = pixelsOf(roi);
      state.roi.forEach((_, index) => setPixel(index, pixels[4 * index] >= 128 ? 1 : 0));
      state.origin = answer.roi_source === "mask file" ? "mask" : "automatic";
      state.original = state.roi.slice();
    }
    const size = Math.max(2, Math.round(state.width / 25));
    sizeInput.max = String(Math.max(60, Math.round(state.width / 4)));
    sizeInput.value = sizeOutput.value = String(size);
    delete canvas.dataset.polygon;
    canvas.style.aspectRatio = `${state.width} / ${state.height}`;
    editor.hidden = false;
    refreshLayer();
    describe();
  }

  async function loadPreview() {
    const image = imageInput.files[0];
    if (!image) return;
    const body = new FormData();
    body.append("image", image);
    if (maskInput.files[0]) body.append("mask", maskInput.files[0]);
    say("Reading the image…");
    try {
      const response = await fetch("api/preview", {method: "POST", body});
      const answer = await response.json();
      if (!response.ok) {
        showProblem(answer.detail, SHOWN_PROBLEM);
        say(answer.detail);
        return;
      }
      await show(answer);
      document.getElementById("answer").replaceChildren();
    } catch (error) {
      showProblem(`${error.message}.`, SHOWN_PROBLEM);
    }
  }

  function startPreview() {
    state.loading = loadPreview().finally(() => { state.loading = null; });
  }

  function roiBlob() {
    const out = document.createElement("canvas");
    out.width = state.width;
    out.height = state.height;
    const context = out.getContext("2d");
    const pixels = context.createImageData(state.width, state.height);
    state.roi.forEach((value, index) => {
      const level = value ? roiValue : 0;
      pixels.data.set([level, level, level, 255], 4 * index);
    });
    context.putImageData(pixels, 0, 0);
    return new Promise((resolve) => out.toBlob(resolve, "image/png"));
  }

  /* Where the ROI on the canvas came from: the preview's (automatic proposal or mask file)
     unchanged or corrected, or drawn by hand. */
  function roiSource() {
    if (!state.origin) return "drawn";
    const unchanged = state.roi.every((value, index) => value === state.original[index]);
    if (state.origin === "mask") return unchanged ? "mask" : "mask_corrected";
    return unchanged ? "automatic" : "automatic_corrected";
  }

  async function submit(event) {
    event.preventDefault();
    if (state.loading) await state.loading;
    if (state.points.length >= 3) closePolygon();
    const body = new FormData(form);
    if (state.roi) {  // what is on the canvas is the ROI, and only that
      if (!state.roi.some(Boolean)) {
        showProblem(NO_ROI, "No region of interest:");
        say(`No region of interest: ${NO_ROI}`);
        return;
      }
      const source = roiSource();
      canvas.dataset.roiSource = source;
      if (source !== "mask") {  // a mask file unchanged goes as the file itself
        body.delete("mask");
        body.append("roi", await roiBlob(), "roi.png");
        body.append("roi_source", source);
      }
    }
    const button = document.getElementById("predict");
    button.disabled = true;
    try {
      const response = await fetch(form.action, {method: "POST", body});
      const text = await response.text();
      if ((response.headers.get("content-type") || "").includes("application/json")) {
        showProblem(JSON.parse(text).detail);  // refused before the page (size, token)
        return;
      }
      const answer = new DOMParser().parseFromString(text, "text/html").getElementById("answer");
      document.getElementById("answer").replaceWith(answer);
      if (window.dlrnShowPatient) window.dlrnShowPatient();  // the explorer starts there
      answer.scrollIntoView();
    } catch (error) {
      showProblem(`the server could not be reached (${error.message}).`);
    } finally {
      button.disabled = false;
    }
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (!state.roi || event.button !== 0) return;
    event.preventDefault();
    canvas.focus();
    const point = imagePoint(event);
    if (state.tool === "polygon") {
      addPoint(point);
      return;
    }
    canvas.setPointerCapture(event.pointerId);
    remember();
    state.stroke = {last: point, value: state.tool === "brush" ? 1 : 0};
    paint(point, point, state.stroke.value);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!state.stroke) return;
    const point = imagePoint(event);
    paint(state.stroke.last, point, state.stroke.value);
    state.stroke.last = point;
  });
  for (const type of ["pointerup", "pointercancel"]) {
    canvas.addEventListener(type, () => {
      if (!state.stroke) return;
      state.stroke = null;
      describe();
    });
  }
  canvas.addEventListener("keydown", (event) => {
    if (!state.roi) return;
    if (event.key === "Enter") closePolygon();
    else if (event.key === "Escape") {
      state.points = [];
      render();
      describe();
    } else if (event.key === "z" && (event.ctrlKey || event.metaKey)) undo();
    else return;
    event.preventDefault();
  });
  for (const button of editor.querySelectorAll("[data-tool]")) {
    button.addEventListener("click", () => chooseTool(button.dataset.tool));
  }
  document.getElementById("close-polygon").addEventListener("click", closePolygon);
  document.getElementById("undo").addEventListener("click", () => state.roi && undo());
  document.getElementById("clear").addEventListener("click", () => state.roi && clear());
  sizeInput.addEventListener("input", () => { sizeOutput.value = sizeInput.value; });
  imageInput.addEventListener("change", startPreview);
  maskInput.addEventListener("change", startPreview);
  new ResizeObserver(render).observe(canvas);
  form.addEventListener("submit", submit);
  if (imageInput.files[0]) startPreview();  // a file the browser kept (back, reload)
})();
