// The analyst page: sends the pasted indicators to the batch endpoint and
// renders each result. Every value from the server is inserted with
// textContent or as an attribute, never as HTML, because provider data
// (summaries, tags, references) is untrusted.
"use strict";

const KEY_STORAGE = "iocscope.apiKey";
const BATCH_URL = "/v1/ioc/enrich/batch";

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) {
    node.textContent = String(text);
  }
  if (className) {
    node.className = className;
  }
  return node;
}

function splitIndicators(text) {
  return text.split(/\s+/).map((part) => part.trim()).filter((part) => part.length > 0);
}

// Returns a link for http and https references only; other schemes
// (javascript:, data:) become plain text.
function referenceCell(reference) {
  const cell = element("td");
  if (!reference) {
    return cell;
  }
  let url = null;
  try {
    url = new URL(reference);
  } catch (error) {
    url = null;
  }
  if (url === null || (url.protocol !== "https:" && url.protocol !== "http:")) {
    cell.textContent = reference;
    return cell;
  }
  const link = element("a", url.hostname);
  link.href = url.href;
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  link.title = url.href;
  cell.appendChild(link);
  return cell;
}

function sourcesTable(sources) {
  const table = element("table", null, "sources");
  const head = table.createTHead().insertRow();
  for (const title of ["Source", "Status", "Flagged", "Confidence", "Summary", "Categories", "Reference"]) {
    head.appendChild(element("th", title));
  }
  const body = table.createTBody();
  for (const source of sources) {
    const row = body.insertRow();
    row.className = source.flagged ? "flagged" : "";
    row.appendChild(element("td", source.source));
    row.appendChild(element("td", source.status));
    row.appendChild(element("td", source.flagged ? "yes" : "no"));
    row.appendChild(element("td", source.confidence));
    row.appendChild(element("td", source.summary || source.error || ""));
    row.appendChild(element("td", (source.categories || []).join(", ")));
    row.appendChild(referenceCell(source.reference));
  }
  return table;
}

function contextList(context) {
  const list = element("dl", null, "context");
  for (const [name, value] of Object.entries(context || {})) {
    list.appendChild(element("dt", name));
    list.appendChild(element("dd", typeof value === "object" ? JSON.stringify(value) : value));
  }
  return list;
}

function resultCard(result) {
  const card = element("article", null, "result");
  if (result.error) {
    card.classList.add("invalid");
    card.appendChild(element("h2", result.value));
    card.appendChild(element("p", result.error.message, "error"));
    return card;
  }
  const title = element("h2", result.display);
  title.appendChild(element("span", result.type, "type"));
  card.appendChild(title);
  const summary = element("p", null, "summary");
  summary.appendChild(element("span", result.verdict, `verdict verdict-${result.verdict}`));
  summary.appendChild(element("span", `score ${result.risk_score}/100`, "score"));
  summary.appendChild(
    element("span", `${result.sources_flagged} of ${result.sources_queried} sources flagged it`, "counts"),
  );
  card.appendChild(summary);
  const reasons = element("ul", null, "reasons");
  for (const reason of result.reasons) {
    reasons.appendChild(element("li", reason));
  }
  card.appendChild(reasons);
  card.appendChild(contextList(result.context));
  if (result.sources.length > 0) {
    card.appendChild(sourcesTable(result.sources));
  }
  return card;
}

async function enrich(apiKey, indicators) {
  const response = await fetch(BATCH_URL, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-API-Key": apiKey },
    body: JSON.stringify({ indicators }),
    credentials: "omit",
  });
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : response.statusText;
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function start() {
  const form = document.getElementById("lookup-form");
  const keyInput = document.getElementById("api-key");
  const indicatorsInput = document.getElementById("indicators");
  const status = document.getElementById("status");
  const results = document.getElementById("results");
  const button = document.getElementById("enrich");

  keyInput.value = sessionStorage.getItem(KEY_STORAGE) || "";
  keyInput.addEventListener("change", () => sessionStorage.setItem(KEY_STORAGE, keyInput.value));
  document.getElementById("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    keyInput.value = "";
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const indicators = splitIndicators(indicatorsInput.value);
    if (indicators.length === 0) {
      status.textContent = "Enter at least one indicator.";
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, keyInput.value);
    button.disabled = true;
    status.textContent = `Enriching ${indicators.length} indicator(s)…`;
    results.replaceChildren();
    try {
      const body = await enrich(keyInput.value, indicators);
      results.replaceChildren(...body.results.map(resultCard));
      status.textContent = `${body.count} result(s) in ${Math.round(body.took_ms)} ms.`;
    } catch (error) {
      status.textContent = `Request failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", start);
