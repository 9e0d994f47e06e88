/**
 * Home Assistant MQTT discovery: the retained config message that makes the LED
 * appear in Home Assistant as a light, with no YAML. main.ts sends it on every
 * connect. Topic: homeassistant/light/<client id>/led/config (node id = the
 * client id, object id "led"). The payload uses Home Assistant's abbreviated
 * keys and its base topic "~" to save bytes:
 *
 *   ~        the LED's topic (prefix/topic)   cmd_t  "~"  (commands)
 *   stat_t   "~/state"                        avty_t "~/status" (online / offline,
 *   pl_on    "on", pl_off "off": what the       the defaults of payload_available
 *            firmware reports and obeys          and payload_not_available)
 *   qos      1: commands wait for a board that is offline (persistent session)
 *   uniq_id  the client id; dev (the device block): ids and name the client id
 *
 * A light rather than a switch: it is a lamp, so it belongs with Home Assistant's
 * lights (light groups, "turn off all lights", the light card), and MQTT light's
 * default schema is plain on/off with payload_on / payload_off, as here.
 *
 * Values go in as they are: scripts/config.ts lets no ", \ or control character
 * into the topic, prefix or client id. (Espruino's JSON.stringify would turn each
 * byte of a UTF-8 prefix into its own \u00XX escape, naming another topic.)
 */
import type { MqttClient } from "../session/index";

/** clientId names the node and the device; commandTopic is the LED's topic ("~"). */
export function announce(client: MqttClient, clientId: string, commandTopic: string): void {
  client.publish("homeassistant/light/" + clientId + "/led/config",
    '{"~":"' + commandTopic + '","name":"LED","cmd_t":"~","stat_t":"~/state","avty_t":"~/status","pl_on":"on","pl_off":"off","qos":1,"uniq_id":"' +
    clientId + '","dev":{"ids":"' + clientId + '","name":"' + clientId + '"}}', 0, true);
}
