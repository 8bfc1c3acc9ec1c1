import { describe, expect, it } from "vitest";
import { NONE, toggle, within, type Selection } from "./selection";

const order = ["a", "b", "c", "d", "e"];
const ids = (s: { ids: ReadonlySet<string> }) => [...s.ids].sort();

describe("choosing tickets", () => {
  it("toggles one row at a time", () => {
    let s = toggle(NONE, order, 1, false);
    expect(ids(s)).toEqual(["b"]);
    s = toggle(s, order, 3, false);
    expect(ids(s)).toEqual(["b", "d"]);
    s = toggle(s, order, 1, false);
    expect(ids(s)).toEqual(["d"]);
  });

  it("extends a range from the last row clicked, either way", () => {
    let s = toggle(NONE, order, 1, false);
    s = toggle(s, order, 3, true);
    expect(ids(s)).toEqual(["b", "c", "d"]);
    s = toggle(NONE, order, 4, false);
    s = toggle(s, order, 2, true);
    expect(ids(s)).toEqual(["c", "d", "e"]);
  });

  it("clears a range the same way it chose one", () => {
    let s: Selection = { ids: new Set(order), anchor: 0 };
    s = toggle(s, order, 2, true);
    expect(ids(s)).toEqual(["d", "e"]);
  });

  it("forgets rows no longer listed", () => {
    const s = toggle(toggle(NONE, order, 0, false), order, 4, false);
    expect(ids(within(s, ["a", "b"]))).toEqual(["a"]);
    expect(within(s, order)).toBe(s);
    expect(toggle(s, order, 9, false)).toBe(s);
  });
});
