// End-to-end encryption of direct rooms in the browser (docs/e2ee.md), with WebCrypto only.
//
// This device's key: an ECDH P-256 pair made here, the private half non-extractable, both kept in
// IndexedDB (per signed-in user); the public half is published (POST e2ee/devices/) and listed to
// the people who may write to us. A message: a fresh random AES-256-GCM content key encrypts the
// text (the room and the sending device are its additional data, so a ciphertext cannot be moved to
// another room or passed off as another device's); the content key is wrapped with AES-KW for
// every active device of both members, under a key HKDF-SHA-256 derives from ECDH(sender device,
// recipient device). The server sees the envelope only (e2ee/envelope.py checks its shape).
//
// Exported: DeviceKeys (this device's key, made and published once), Sealer (seal/open for one
// room, and its safety number), safetyNumber. Nothing here touches the DOM.
import { getJson, HttpError, sendJson } from "./api.js";

const DB_NAME = "parley-e2ee";
const STORE = "devices";
const VERSION = 1;
const INFO = "parley-e2ee-v1";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const supported = () => Boolean(globalThis.crypto?.subtle && globalThis.indexedDB);

const toBase64 = (buffer) => {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
};
const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

function request(idbRequest) {
  return new Promise((resolve, reject) => {
    idbRequest.onsuccess = () => resolve(idbRequest.result);
    idbRequest.onerror = () => reject(idbRequest.error);
  });
}

async function openStore(mode) {
  const open = indexedDB.open(DB_NAME, VERSION);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE);
  const db = await request(open);
  return db.transaction(STORE, mode).objectStore(STORE);
}

/** A room's safety number (docs/e2ee.md "Verifying"): 60 digits, 30 per member (ordered by user
 * id), each member's from the SHA-256 of their active devices' public keys. Both members' pages
 * show the same number when both see the same devices for both; a device the server added, hid or
 * swapped for either of them makes the numbers differ. `lists`: [{user, keys: [public key, ...]}]. */
export async function safetyNumber(lists) {
  const groups = [];
  for (const { user, keys } of [...lists].sort((a, b) => a.user - b.user)) {
    const text = [`${INFO} safety`, String(user), ...[...keys].sort()].join("|");
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
    for (let i = 0; i < 30; i += 5) {
      let value = 0;
      for (let j = 0; j < 5; j++) value = value * 256 + digest[i + j]; // 40 bits: exact in a double
      groups.push(String(value % 100000).padStart(5, "0"));
    }
  }
  return groups.join(" ");
}

/** This device's key pair for `me`, made, stored and published on first use. */
export class DeviceKeys {
  #me;
  #ready = null;

  constructor(me) {
    this.#me = me;
  }

  /** {id, privateKey, publicKey}: the published device (made now if there is none, or if ours was revoked). */
  device() {
    this.#ready ??= this.#load().catch((error) => {
      this.#ready = null; // try again next time (offline, server away)
      throw error;
    });
    return this.#ready;
  }

  async #load() {
    const slot = `user:${this.#me.id}`;
    const stored = await request((await openStore("readonly")).get(slot));
    if (stored) {
      try {
        return await this.#publish(stored);
      } catch (error) {
        if (!(error instanceof HttpError && error.code === "device_revoked")) throw error;
      }
    }
    const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
    const made = {
      privateKey: pair.privateKey,
      publicKey: toBase64(await crypto.subtle.exportKey("spki", pair.publicKey)),
    };
    const device = await this.#publish(made);
    await request((await openStore("readwrite")).put(device, slot));
    return device;
  }

  /** Registering the same key again answers with its device: the id, and a check it is not revoked. */
  async #publish(keys) {
    const label = (navigator.userAgentData?.brands?.[0]?.brand || navigator.platform || "Browser").slice(0, 80);
    const answer = await sendJson("POST", "/api/v1/e2ee/devices/", { public_key: keys.publicKey, label });
    return { id: answer.id, privateKey: keys.privateKey, publicKey: keys.publicKey };
  }
}

/** Seals and opens one room's messages for `me`, writing to the room's `members` (user ids). */
export class Sealer {
  #keys;
  #roomId;
  #members;
  #publicKeys = new Map(); // device id -> CryptoKey (ECDH public)
  #listed = new Map(); // user id -> Promise of their devices as last fetched
  #opened = new Map(); // message id -> Promise<string>

  constructor({ keys, roomId, members }) {
    this.#keys = keys;
    this.#roomId = roomId;
    this.#members = members;
  }

  #aad(senderDevice) {
    return encoder.encode(`${INFO}|${this.#roomId}|${senderDevice}`);
  }

  /** A person's devices: fetched again when `fresh` (sealing: a device added since must get the
   * key), else as last fetched (opening a page of history asks once per sender, not per message). */
  #devicesOf(userId, { fresh = false } = {}) {
    if (fresh || !this.#listed.has(userId)) {
      const listed = getJson(`/api/v1/e2ee/users/${encodeURIComponent(userId)}/devices/`).then((a) => a.results);
      listed.catch(() => this.#listed.delete(userId));
      this.#listed.set(userId, listed);
    }
    return this.#listed.get(userId);
  }

  async #publicKey(device) {
    if (!this.#publicKeys.has(device.id)) {
      const key = crypto.subtle.importKey("spki", fromBase64(device.public_key), { name: "ECDH", namedCurve: "P-256" }, false, []);
      this.#publicKeys.set(device.id, key);
    }
    return this.#publicKeys.get(device.id);
  }

  /** The AES-KW key between two devices (either side computes the same one). */
  async #wrappingKey(privateKey, publicKey, senderDevice, recipientDevice) {
    const shared = await crypto.subtle.deriveBits({ name: "ECDH", public: publicKey }, privateKey, 256);
    const base = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
    return crypto.subtle.deriveKey(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: encoder.encode(this.#roomId),
        info: encoder.encode(`${INFO} wrap|${senderDevice}|${recipientDevice}`),
      },
      base,
      { name: "AES-KW", length: 256 },
      false,
      ["wrapKey", "unwrapKey"],
    );
  }

  /** The room's safety number as the server lists its members' active devices now. */
  async safetyNumber() {
    const members = this.#members();
    const lists = await Promise.all(members.map((id) => this.#devicesOf(id, { fresh: true })));
    const active = (devices) => devices.filter((device) => !device.revoked_at).map((device) => device.public_key);
    return safetyNumber(members.map((user, index) => ({ user, keys: active(lists[index]) })));
  }

  /** The envelope of `text` for every active device of the room's members (mine included). */
  async seal(text) {
    const me = await this.#keys.device();
    const lists = await Promise.all(this.#members().map((id) => this.#devicesOf(id, { fresh: true })));
    const recipients = lists.flat().filter((device) => !device.revoked_at);
    const contentKey = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt"]);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ciphertext = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: this.#aad(me.id) },
      contentKey,
      encoder.encode(text),
    );
    const keys = {};
    for (const device of recipients) {
      const wrapping = await this.#wrappingKey(me.privateKey, await this.#publicKey(device), me.id, device.id);
      keys[device.id] = toBase64(await crypto.subtle.wrapKey("raw", contentKey, wrapping, "AES-KW"));
    }
    if (!keys[me.id]) throw new Error("this device's key is not listed");
    return { v: 1, sender_device: me.id, iv: toBase64(iv), ciphertext: toBase64(ciphertext), keys };
  }

  /** The text of an encrypted message (once per message), or an Error saying why it can't be read. */
  open(message) {
    if (!this.#opened.has(message.id)) {
      const opening = this.#open(message);
      opening.catch(() => this.#opened.delete(message.id)); // a later copy of the message tries again
      this.#opened.set(message.id, opening);
    }
    return this.#opened.get(message.id);
  }

  async #open(message) {
    const envelope = message.e2ee.envelope;
    const me = await this.#keys.device();
    const wrapped = envelope.keys[me.id];
    if (!wrapped) throw new Error("Not encrypted for this device (it was added later).");
    // The sending device must be one of the sender's: a member cannot pass as the other.
    const find = async (fresh) =>
      (await this.#devicesOf(message.sender.id, { fresh })).find((d) => d.id === envelope.sender_device);
    // A device the list fetched before did not have yet: fetched again once.
    const device = message.sender ? ((await find(false)) ?? (await find(true))) : undefined;
    if (!device) throw new Error("The sending device is not one of the sender's.");
    const wrapping = await this.#wrappingKey(me.privateKey, await this.#publicKey(device), device.id, me.id);
    const contentKey = await crypto.subtle.unwrapKey("raw", fromBase64(wrapped), wrapping, "AES-KW", "AES-GCM", false, [
      "decrypt",
    ]);
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: fromBase64(envelope.iv), additionalData: this.#aad(device.id) },
      contentKey,
      fromBase64(envelope.ciphertext),
    );
    return decoder.decode(plain);
  }
}
