// Parse ros2msg schemas and decode CDR messages with Foxglove's own libraries (@foxglove/rosmsg,
// @foxglove/rosmsg2-serialization), as the Foxglove app does. Input on stdin: JSON {name: {schema, msgs: [base64]}}.
// Output: JSON {name: {ok, error, messages: [decoded; uint8 arrays as {bytes: length}]}}.
const {parse} = require("@foxglove/rosmsg");
const {MessageReader} = require("@foxglove/rosmsg2-serialization");
let input = "";
process.stdin.on("data", (d) => { input += d; });
process.stdin.on("end", () => {
  const out = {};
  for (const [name, e] of Object.entries(JSON.parse(input))) {
    try {
      const reader = new MessageReader(parse(e.schema, {ros2: true}));
      const messages = e.msgs.map((m) => reader.readMessage(Buffer.from(m, "base64")));
      out[name] = {ok: true, messages: JSON.parse(JSON.stringify(messages, (k, v) =>
        (v instanceof Uint8Array ? {bytes: v.length} : ArrayBuffer.isView(v) ? Array.from(v) :
          typeof v === "bigint" ? Number(v) : v)))};
    } catch (err) {
      out[name] = {ok: false, error: String(err)};
    }
  }
  process.stdout.write(JSON.stringify(out));
});
