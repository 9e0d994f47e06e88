/**
 * Home Assistant MQTT discovery, end to end: the built script in the virtual board
 * publishes homeassistant/light/<client id>/led/config, retained, on every connect.
 * The payload is checked against what Home Assistant documents for it (the MQTT
 * integration's discovery rules and abbreviations, and the MQTT light's default
 * schema), then used the way Home Assistant would use it: its command topic, QoS
 * and payloads switch the LED, its state and availability topics carry what the
 * board reports.
 */
import { afterEach, describe, expect, it } from "vitest";
import { startRig, type Rig } from "../support/e2e-rig";
import { parseCommand, LED_ON, LED_OFF } from "../../src/app/led";

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

// ---- What Home Assistant documents (facts from its MQTT integration docs) ----

/** Discovery topic: <prefix>/<component>/[<node_id>/]<object_id>/config; ids from [a-zA-Z0-9_-]. */
const DISCOVERY_TOPIC = /^homeassistant\/(light)\/(?:([a-zA-Z0-9_-]+)\/)?([a-zA-Z0-9_-]+)\/config$/;

/** Documented abbreviations of entity options that an MQTT light may use. */
const ABBREVIATIONS: Record<string, string> = {
  avty: "availability", avty_mode: "availability_mode", avty_t: "availability_topic", avty_tpl: "availability_template",
  cmd_t: "command_topic", dev: "device", e: "encoding", ent_cat: "entity_category", ic: "icon",
  json_attr_t: "json_attributes_topic", json_attr_tpl: "json_attributes_template", obj_id: "object_id",
  on_cmd_type: "on_command_type", opt: "optimistic", pl_avail: "payload_available", pl_not_avail: "payload_not_available",
  pl_off: "payload_off", pl_on: "payload_on", ret: "retain", stat_t: "state_topic", stat_val_tpl: "state_value_template",
  uniq_id: "unique_id",
};
/** Documented abbreviations inside the device block. */
const DEVICE_ABBREVIATIONS: Record<string, string> = {
  cu: "configuration_url", cns: "connections", ids: "identifiers", mf: "manufacturer", mdl: "model",
  hw: "hw_version", sw: "sw_version", sa: "suggested_area", name: "name",
};
/** MQTT light, default schema: the on/off options and their types (brightness, colour and effect options left out: the LED has none). */
const LIGHT_OPTIONS: Record<string, "string" | "number" | "boolean" | "object"> = {
  availability_topic: "string", availability_mode: "string", availability_template: "string", command_topic: "string",
  device: "object", enabled_by_default: "boolean", encoding: "string", entity_category: "string", icon: "string",
  json_attributes_topic: "string", json_attributes_template: "string", name: "string", object_id: "string",
  on_command_type: "string", optimistic: "boolean", payload_available: "string", payload_not_available: "string",
  payload_off: "string", payload_on: "string", qos: "number", retain: "boolean", schema: "string", state_topic: "string",
  state_value_template: "string", unique_id: "string",
};
const DEVICE_OPTIONS = ["configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "name", "serial_number", "suggested_area", "sw_version", "via_device"];
/** Defaults Home Assistant fills in for what the payload leaves out. */
const DEFAULTS = { payload_on: "ON", payload_off: "OFF", payload_available: "online", payload_not_available: "offline", qos: 0, retain: false };

type Light = typeof DEFAULTS & Record<string, any>;

/**
 * Reads a discovery payload as Home Assistant does: abbreviations expanded, the base
 * topic "~" put in where an option ending in _topic starts or ends with it, defaults
 * filled in. Throws on anything the light's schema does not allow.
 */
function readLight(payload: string): Light {
  const raw = JSON.parse(payload);
  expect(raw, "a JSON object").toBeTypeOf("object");
  const base: string | undefined = raw["~"];
  const out: Record<string, any> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k === "~") continue;
    const key = ABBREVIATIONS[k] ?? k;
    expect(Object.keys(LIGHT_OPTIONS), `"${k}" is an option of an MQTT light`).toContain(key);
    expect(key in out, `"${key}" given twice`).toBe(false);
    out[key] = v;
  }
  for (const [k, v] of Object.entries(out)) {
    expect(typeof v, `${k}'s type`).toBe(LIGHT_OPTIONS[k]);
    if (k.endsWith("_topic") && base !== undefined) {
      let t = v as string;
      if (t.startsWith("~")) t = base + t.slice(1);
      if (t.endsWith("~")) t = t.slice(0, -1) + base;
      out[k] = t;
    }
  }
  if (out.device) {
    const dev: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(out.device)) {
      const key = DEVICE_ABBREVIATIONS[k] ?? k;
      expect(DEVICE_OPTIONS, `"${k}" is a device option`).toContain(key);
      dev[key] = v;
    }
    // The device registry needs a unique_id, and identifiers or connections.
    expect(out.unique_id, "a device block needs unique_id").toBeTypeOf("string");
    expect(dev.identifiers ?? dev.connections, "a device block needs identifiers or connections").toBeDefined();
    out.device = dev;
  }
  expect(out.command_topic, "command_topic is required").toBeTypeOf("string");
  return { ...DEFAULTS, ...out } as Light;
}

// ---- The tests ----

/** Boots a rig whose phone also listens to homeassistant/#, and waits for the board's discovery message. */
async function bootWithDiscovery(opts: Parameters<typeof startRig>[0]): Promise<{ r: Rig; topic: string; light: Light }> {
  rig = await startRig({ ...opts, boot: false });
  const r = rig;
  await new Promise<void>((ok, ko) => r.phone.subscribe("homeassistant/#", { qos: 1 }, (e) => (e ? ko(e) : ok())));
  r.boot();
  await r.waitOnline();
  await r.waitFor(() => r.messages.some((m) => m.topic.startsWith("homeassistant/")), "the discovery message");
  const msgs = r.messages.filter((m) => m.topic.startsWith("homeassistant/"));
  expect(msgs, "one discovery message per connect").toHaveLength(1);
  return { r, topic: msgs[0].topic, light: readLight(msgs[0].payload) };
}

describe("Home Assistant discovery (built firmware, Aedes)", () => {
  for (const [board, modem] of [["pico", "esp8266"], ["original", "sim800"]] as const) {
    it(`${board}-${modem}: a light config Home Assistant accepts, retained, that switches the LED and shows its state and presence`, async () => {
      const { r, topic, light } = await bootWithDiscovery({ board, modem });
      const clientId = r.config.clientId!;
      // topic: component light, node id = the client id, object id "led"
      const m = DISCOVERY_TOPIC.exec(topic);
      expect(m, topic).not.toBeNull();
      expect([m![1], m![2], m![3]]).toEqual(["light", clientId, "led"]);
      // the LED's own topics, and payloads the firmware speaks
      expect(light.command_topic).toBe("led");
      expect(light.state_topic).toBe("led/state");
      expect(light.availability_topic).toBe("led/status");
      expect([light.payload_on, light.payload_off]).toEqual(["on", "off"]);
      expect(parseCommand(light.payload_on)).toBe(LED_ON);
      expect(parseCommand(light.payload_off)).toBe(LED_OFF);
      expect([light.payload_available, light.payload_not_available], "availability payloads (defaults) = led/status's").toEqual(["online", "offline"]);
      // commands at QoS 1 (the board's subscription), never retained
      expect(light.qos).toBe(1);
      expect(light.retain).toBe(false);
      expect(light.optimistic, "state comes from the board, not assumed").toBeUndefined();
      // identity: unique id and device from the client id
      expect(light.unique_id).toBe(clientId);
      expect(light.device).toEqual({ identifiers: clientId, name: clientId });

      // retained on the broker: what Home Assistant gets when it starts after the board
      expect(await r.retained(topic)).toBe(r.messages.find((x) => x.topic === topic)!.payload);
      expect(await r.retained(light.state_topic)).toBe(light.payload_off);
      expect(await r.retained(light.availability_topic)).toBe(light.payload_available);

      // used as Home Assistant uses it: publish payload_on at its QoS to its command topic
      let mark = r.mark();
      await r.publish(light.command_topic, light.payload_on, { qos: light.qos as 1 });
      await r.waitForMessage(light.state_topic, light.payload_on, mark);
      expect(r.lit()).toBe(true);
      mark = r.mark();
      await r.publish(light.command_topic, light.payload_off, { qos: light.qos as 1 });
      await r.waitForMessage(light.state_topic, light.payload_off, mark);
      expect(r.lit()).toBe(false);

      // re-sent on every connect: the link drops, the will marks it unavailable, the board reconnects and announces again
      mark = r.mark();
      r.sim.dropLink();
      await r.waitForMessage(light.availability_topic, light.payload_not_available, mark, { timeoutMs: 30_000 });
      await r.waitForMessage(topic, undefined, mark, { timeoutMs: 120_000 });
      await r.waitForMessage(light.availability_topic, light.payload_available, mark);
      const again = r.received(topic, mark);
      expect(again).toHaveLength(1);
      expect(readLight(again[0].payload)).toEqual(light);
      expect(r.commands("AT+CIPSTART").length, "a second connection").toBe(2);
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }

  it("pico-esp8266 with prefix \"kitchen\" and topic \"lamp\": the base topic follows; Mosquitto takes the config too", async () => {
    const { r, topic, light } = await bootWithDiscovery({ board: "pico", modem: "esp8266", broker: "mosquitto", config: { prefix: "kitchen", topic: "lamp", clientId: "kitchen-lamp_1" } });
    expect(topic).toBe("homeassistant/light/kitchen-lamp_1/led/config");
    expect([light.command_topic, light.state_topic, light.availability_topic]).toEqual(["kitchen/lamp", "kitchen/lamp/state", "kitchen/lamp/status"]);
    expect(light.unique_id).toBe("kitchen-lamp_1");
    expect(await r.retained(topic)).toBeDefined();
    const mark = r.mark();
    await r.publish(light.command_topic, light.payload_on, { qos: 1 });
    await r.waitForMessage(light.state_topic, light.payload_on, mark);
    expect(r.lit()).toBe(true);
    expect(r.problems(), r.diagnostics()).toEqual([]);
  });
});

describe("an ignored command's log line", () => {
  it("pico-esp8266: a long payload is shown cut at 16 bytes with \"...\" after it; a short one whole", async () => {
    rig = await startRig({ board: "pico", modem: "esp8266" });
    const r = rig;
    let logs = r.vb.console.length;
    expect(await r.command("please switch the light on now")).toBeUndefined();
    expect(r.vb.console.slice(logs).filter((l) => l.startsWith("led: ignored"))).toEqual(['led: ignored "please switch th"...']);
    logs = r.vb.console.length;
    expect(await r.command("sixteen bytes!!!")).toBeUndefined();
    expect(r.vb.console.slice(logs).filter((l) => l.startsWith("led: ignored"))).toEqual(['led: ignored "sixteen bytes!!!"']);
    expect(r.problems(), r.diagnostics()).toEqual([]);
  });
});
