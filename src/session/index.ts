/**
 * The MQTT session layer: MqttClient (API documented in ./client.ts) and the
 * transport contract. For per-filter routing in onMessage use topicMatches from
 * ../codec (not re-exported here, so a build that does not use it leaves it out).
 */
export { MqttClient } from "./client";
export type { MqttOptions, Callback, CallbackError, MqttCloseReason, MqttError, Refusal, SessionCloseReason } from "./client";
export type { Bytes, Clock, LinkCloseReason, Transport, TransportHandler } from "../transport";
