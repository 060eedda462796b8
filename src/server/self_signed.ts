/**
 * A self-signed serving certificate made at start-up, as controller-runtime's metrics server
 * does when no certificate is given: ECDSA P-256 (WebCrypto), valid for `localhost`, the
 * host name, 127.0.0.1 and ::1 for one year, server authentication only. Encoded with a few
 * lines of DER rather than an X.509 library, so nothing is imported for it.
 * @module
 */

/** A certificate and its private key, PEM. */
export interface PemKeyPair {
  /** The certificate, `-----BEGIN CERTIFICATE-----`. */
  cert: string;
  /** The private key, PKCS#8 `-----BEGIN PRIVATE KEY-----`. */
  key: string;
}

function len(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return [0x80 | out.length, ...out];
}

function tlv(tag: number, ...parts: Array<Uint8Array | number[]>): Uint8Array<ArrayBuffer> {
  const body = parts.flatMap((p) => [...p]);
  return new Uint8Array([tag, ...len(body.length), ...body]);
}

const seq = (...p: Array<Uint8Array | number[]>) => tlv(0x30, ...p);

function oid(dotted: string): Uint8Array {
  const [a, b, ...rest] = dotted.split(".").map(Number);
  const out = [40 * a + b];
  for (const n of rest) {
    const bytes = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) bytes.unshift(0x80 | (v & 0x7f));
    out.push(...bytes);
  }
  return tlv(0x06, out);
}

/** A DER INTEGER from big-endian unsigned bytes. */
function uint(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = [...bytes.slice(i)];
  if (v[0] & 0x80) v.unshift(0);
  return tlv(0x02, v);
}

function utcTime(d: Date): Uint8Array {
  const s = d.toISOString().replace(/[-:T]/g, "").slice(2, 14) + "Z";
  return tlv(0x17, [...new TextEncoder().encode(s)]);
}

function name(cn: string): Uint8Array {
  return seq(tlv(0x31, seq(oid("2.5.4.3"), tlv(0x0c, [...new TextEncoder().encode(cn)]))));
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return seq(oid(id), ...(critical ? [[0x01, 0x01, 0xff]] : []), tlv(0x04, value));
}

function ipBytes(ip: string): number[] | undefined {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(ip)) return ip.split(".").map(Number);
  if (ip === "::1") return [...new Array(15).fill(0), 1];
  return undefined;
}

function pem(label: string, der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der)).replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Makes a self-signed certificate for `hosts` (DNS names or IPs); see the module doc. */
export async function selfSignedCertificate(
  hosts: string[] = ["localhost", "127.0.0.1", "::1"],
  options: { commonName?: string; validDays?: number; now?: Date } = {},
): Promise<PemKeyPair> {
  const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] &= 0x7f;
  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - 60 * 60_000);
  const notAfter = new Date(now.getTime() + (options.validDays ?? 365) * 86_400_000);
  const ecdsaSha256 = seq(oid("1.2.840.10045.4.3.2"));
  const subject = name(options.commonName ?? "portager-metrics");
  const san = seq(
    ...[...new Set(hosts)].map((h) => {
      const ip = ipBytes(h);
      return ip ? tlv(0x87, ip) : tlv(0x82, [...new TextEncoder().encode(h)]);
    }),
  );
  const tbs = seq(
    tlv(0xa0, tlv(0x02, [2])), // v3
    uint(serial),
    ecdsaSha256,
    subject,
    seq(utcTime(notBefore), utcTime(notAfter)),
    subject,
    spki,
    tlv(
      0xa3,
      seq(
        extension("2.5.29.19", true, seq()), // basicConstraints: not a CA
        extension("2.5.29.15", true, tlv(0x03, [0x07, 0x80])), // keyUsage: digitalSignature
        extension("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.1"))), // extKeyUsage: serverAuth
        extension("2.5.29.17", false, san),
      ),
    ),
  );
  const raw = new Uint8Array(
    await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, keys.privateKey, tbs),
  );
  const signature = seq(uint(raw.slice(0, 32)), uint(raw.slice(32)));
  const cert = seq(tbs, ecdsaSha256, tlv(0x03, [0], signature));
  return { cert: pem("CERTIFICATE", cert), key: pem("PRIVATE KEY", pkcs8) };
}
