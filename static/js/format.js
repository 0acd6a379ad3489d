// Text and time formatting shared by the room page's modules. No state, no DOM.

const pad = (n) => String(n).padStart(2, "0");

export const hhmm = (date) => `${pad(date.getHours())}:${pad(date.getMinutes())}`;

export const isToday = (date) => date.toDateString() === new Date().toDateString();

/** "Today", "Yesterday", or the full date: the divider above the first message of a day. */
export function dayLabel(date) {
  const yesterday = new Date();
  yesterday.setDate(yesterday.getDate() - 1);
  if (isToday(date)) return "Today";
  if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
  return date.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

/** Python counts code points, JavaScript counts UTF-16 units: count like the server does. */
export const charCount = (text) => [...text].length;

/** Messages as sent: trailing whitespace and leading blank lines dropped, indentation kept. */
export const normalise = (text) => text.replace(/^(?:[ \t]*\n)+/, "").replace(/\s+$/, "");

/** The first `limit` characters (code points) of `text`, with an ellipsis if it was longer. */
export const truncate = (text, limit) => (charCount(text) > limit ? `${[...text].slice(0, limit).join("")}…` : text);

/** "a", "a and b", "a, b and c". */
export function listOfNames(names) {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}
