import { describe, expect, it } from "vitest";
import { affectedQueries } from "./stream";

describe("what a live event refreshes", () => {
  it("a comment refreshes that ticket's conversation, files and history", () => {
    expect(affectedQueries({ id: "7", type: "comment.created", ticket_id: "t1" })).toEqual([
      ["comments", "t1"],
      ["attachments", "t1"],
      ["timeline", "t1"],
    ]);
  });

  it("a file added or removed refreshes that ticket's files and history", () => {
    expect(affectedQueries({ id: "12", type: "attachment.removed", ticket_id: "t1" })).toEqual([
      ["attachments", "t1"],
      ["timeline", "t1"],
    ]);
  });

  it("a ticket change refreshes lists, open ticket pages and the history", () => {
    expect(affectedQueries({ id: "8", type: "ticket.status_changed", ticket_id: "t1" })).toEqual([
      ["tickets"],
      ["ticket"],
      ["timeline", "t1"],
    ]);
  });

  it("a notification refreshes the inbox and the count; a reset refreshes everything", () => {
    expect(affectedQueries({ id: "9", type: "notification.created" })).toEqual([["notifications"]]);
    expect(affectedQueries({ id: "10", type: "reset" })).toEqual([[]]);
    expect(affectedQueries({ id: "11", type: "something.new" })).toEqual([]);
  });
});
