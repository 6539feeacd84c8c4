// The shared result renderer: any Box, Polygon, TextSpan or Detection inside any tool's
// result is drawn over the input image, since every plugin returns the same result types.

import { h, s } from "./dom.js";

const isNumber = (v) => typeof v === "number" && Number.isFinite(v);
const isBox = (v) => v && isNumber(v.x) && isNumber(v.y) && isNumber(v.width) && isNumber(v.height);
const isPolygon = (v) =>
  v && Array.isArray(v.points) && v.points.length >= 3 && v.points.every((p) => isNumber(p.x) && isNumber(p.y));

/** Every shape in a result: {kind: "box"|"polygon", box|points, label}, depth first. */
export function shapes(value, found = []) {
  if (Array.isArray(value)) {
    for (const item of value) shapes(item, found);
  } else if (value && typeof value === "object") {
    const label = labelOf(value);
    if (isPolygon(value.polygon)) {
      found.push({ kind: "polygon", points: value.polygon.points, label });
    } else if (isBox(value.box)) {
      found.push({ kind: "box", box: value.box, label });
    } else if (isPolygon(value)) {
      found.push({ kind: "polygon", points: value.points, label: null });
      return found;
    } else if (isBox(value)) {
      found.push({ kind: "box", box: value, label: null });
      return found;
    }
    for (const [key, child] of Object.entries(value)) {
      if (key !== "polygon" && key !== "box") shapes(child, found);
    }
  }
  return found;
}

function labelOf(item) {
  const text = item.text ?? item.label;
  if (typeof text !== "string") return null;
  const score = item.confidence ?? item.score;
  const short = text.length > 40 ? `${text.slice(0, 39)}…` : text;
  return isNumber(score) ? `${short} (${Math.round(score * 100)}%)` : short;
}

/** The image with an SVG layer in its pixel coordinates; returns the stage element. */
export function stage(src, result, alt = "input image") {
  const img = h("img", { src, alt });
  const layer = s("svg", { "aria-hidden": "true", preserveAspectRatio: "none", class: "overlay" });
  const node = h("figure", { class: "stage" }, img, layer);
  const draw = () => {
    layer.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
    layer.replaceChildren(...shapes(result).map(shapeNode));
    node.dataset.shapes = String(layer.childElementCount);
  };
  if (img.complete && img.naturalWidth) draw();
  else img.addEventListener("load", draw, { once: true });
  return node;
}

function shapeNode(shape) {
  let outline;
  let anchor;
  if (shape.kind === "polygon") {
    const points = shape.points.map((p) => `${p.x},${p.y}`).join(" ");
    outline = s("polygon", { class: "shape", points, "data-kind": "polygon" });
    anchor = shape.points.reduce((a, p) => (p.y < a.y || (p.y === a.y && p.x < a.x) ? p : a));
  } else {
    const { x, y, width, height } = shape.box;
    outline = s("rect", { class: "shape", x, y, width, height, "data-kind": "box" });
    anchor = { x, y };
  }
  const group = s("g", {}, outline);
  if (shape.label) {
    group.append(s("text", { x: anchor.x, y: Math.max(anchor.y - 4, 14) }, shape.label));
  }
  return group;
}

/** Every stored image a result refers to ({blob: "sha256:...", media_type: "image/..."}). */
export function artifacts(value, found = []) {
  if (Array.isArray(value)) value.forEach((v) => artifacts(v, found));
  else if (value && typeof value === "object") {
    if (typeof value.blob === "string" && String(value.media_type || "").startsWith("image/")) {
      found.push(value);
    } else Object.values(value).forEach((v) => artifacts(v, found));
  }
  return found;
}

/** The text of every TextSpan / decoded code, as a list. */
export function texts(value, found = []) {
  if (Array.isArray(value)) value.forEach((v) => texts(v, found));
  else if (value && typeof value === "object") {
    if (typeof value.text === "string" && (isBox(value.box) || isPolygon(value.polygon))) {
      found.push(value.text);
    }
    Object.entries(value).forEach(([k, v]) => k !== "text" && texts(v, found));
  }
  return found;
}
