/**
 * MQTT 3.1.1 control packets as plain objects. Payloads and passwords are byte
 * strings (see Bytes in src/transport.ts); topics, client ids and user names
 * are ordinary (possibly non-ASCII) strings that the codec carries as UTF-8.
 */
import type { Bytes } from "../transport";

export const CONNECT = 1;
export const CONNACK = 2;
export const PUBLISH = 3;
export const PUBACK = 4;
export const PUBREC = 5;
export const PUBREL = 6;
export const PUBCOMP = 7;
export const SUBSCRIBE = 8;
export const SUBACK = 9;
export const UNSUBSCRIBE = 10;
export const UNSUBACK = 11;
export const PINGREQ = 12;
export const PINGRESP = 13;
export const DISCONNECT = 14;

export type QoS = 0 | 1 | 2;

export interface Will {
  topic: string;
  payload: Bytes;
  qos: QoS;
  retain: boolean;
}

export interface ConnectPacket {
  type: 1;
  clientId: string;
  clean: boolean;
  /** Seconds, 0..65535. */
  keepAlive: number;
  username?: string;
  password?: Bytes;
  will?: Will;
}
export interface ConnackPacket { type: 2; sessionPresent: boolean; returnCode: number }
export interface PublishPacket {
  type: 3;
  topic: string;
  payload: Bytes;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  /** Present when qos > 0. */
  id?: number;
}
/** PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: a packet id and nothing else. */
export interface AckPacket { type: 4 | 5 | 6 | 7 | 11; id: number }
export interface SubscribePacket { type: 8; id: number; subs: { topic: string; qos: QoS }[] }
/** granted: 0, 1, 2 or 0x80 (failure) per requested filter. */
export interface SubackPacket { type: 9; id: number; granted: number[] }
export interface UnsubscribePacket { type: 10; id: number; topics: string[] }
export interface EmptyPacket { type: 12 | 13 | 14 }

export type Packet =
  | ConnectPacket | ConnackPacket | PublishPacket | AckPacket
  | SubscribePacket | SubackPacket | UnsubscribePacket | EmptyPacket;
