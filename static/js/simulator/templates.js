// "New board from template" in the room page's boards panel (static/js/board/split.js): the gallery
// (GET /api/v1/simulator/templates/) in a select; creating one (POST rooms/{id}/boards/from-template/)
// adds the board to the list and opens it next to the chat, as a new blank board does.
import { el } from "../dom.js";
import { getJson, sendJson } from "../api.js";
import { addStylesheet } from "./board.js";

/** panel: the BoardsPanel (room, form, boards, render(), open(id)). */
export function attachTemplatePicker(panel) {
  const createForm = panel.form;
  if (!createForm) return null;
  addStylesheet();
  const select = el("select", { class: "sim-template-select", name: "template", "aria-label": "Template", "data-sim-template": true }, el("option", { value: "" }, "Loading templates…"));
  const button = el("button", { type: "submit", class: "btn btn-secondary btn-sm", "aria-label": "Create new board from template", title: "New board from this template" }, "Create");
  const message = el("p", { class: "small muted", role: "status", hidden: true });
  const form = el("form", { class: "sim-template", "data-sim-template-form": true }, el("span", { class: "small muted" }, "Or from a template:"), el("div", { class: "input-row" }, select, button));
  const follow = () => {
    form.hidden = createForm.hidden;
    message.hidden = createForm.hidden || !message.textContent;
  };
  new MutationObserver(follow).observe(createForm, { attributes: true, attributeFilter: ["hidden"] });
  createForm.after(form, message);
  follow();
  getJson("/api/v1/simulator/templates/")
    .then((data) => {
      select.replaceChildren(...(data.results || []).map((template) => el("option", { value: template.id, title: template.description }, template.title)));
    })
    .catch((error) => {
      console.warn("Parley: simulator templates", error);
      select.replaceChildren(el("option", { value: "" }, "No templates"));
    });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!select.value) return;
    button.disabled = true;
    try {
      const board = await sendJson("POST", `/api/v1/rooms/${encodeURIComponent(panel.room.id)}/boards/from-template/`, { template: select.value });
      message.textContent = "";
      panel.boards.set(board.id, board);
      panel.render();
      panel.open(board.id);
    } catch (error) {
      message.textContent = error.message || "The board could not be created.";
    } finally {
      button.disabled = false;
      follow();
    }
  });
  return form;
}
