/**
 * Test PKI made with the system `openssl`: a private CA, serving and client certificates, and
 * plain key pairs (e.g. a Kubernetes service-account signing key). Everything is written as PEM
 * files into a folder the caller owns and removes.
 * @module
 */

/** A private certificate authority: its certificate and key, as files and PEM text. */
export interface CertAuthority {
  /** Name given to makeCA (also the CA's CN and the files' base name). */
  name: string;
  /** Path of the CA certificate (PEM). */
  certFile: string;
  /** Path of the CA private key (PEM, PKCS#8). */
  keyFile: string;
  /** CA certificate PEM text. */
  certPem: string;
  /** CA private key PEM text. */
  keyPem: string;
}

/** A certificate issued by a CertAuthority, with its private key. */
export interface IssuedCert {
  /** Path of the certificate (PEM). */
  certFile: string;
  /** Path of the private key (PEM, PKCS#8). */
  keyFile: string;
  /** Certificate PEM text. */
  certPem: string;
  /** Private key PEM text. */
  keyPem: string;
}

/** A key pair without a certificate. */
export interface KeyPair {
  /** Path of the private key (PEM, PKCS#8). */
  privateKeyFile: string;
  /** Path of the public key (PEM, SubjectPublicKeyInfo). */
  publicKeyFile: string;
  /** Private key PEM text. */
  privateKeyPem: string;
  /** Public key PEM text. */
  publicKeyPem: string;
}

/** Key algorithm: EC P-256 (fast, the default) or RSA 2048 (for RS256 signers). */
export type KeyType = "ec" | "rsa";

/** What certificate makeCert issues. */
export interface CertOptions {
  /** Subject common name (the user name for Kubernetes client certs). */
  cn: string;
  /** Subject alternative names; IPv4/IPv6 literals become IP SANs, the rest DNS SANs. */
  sans?: string[];
  /** true → a client certificate (clientAuth); otherwise a serving certificate (serverAuth). */
  client?: boolean;
  /** Subject organizations (Kubernetes groups for client certs, e.g. "system:masters"). */
  organizations?: string[];
  /** Base name of the written files (default: cn with unsafe characters replaced). */
  name?: string;
  /** Key algorithm (default "ec"). */
  keyType?: KeyType;
  /** Validity in days (default 3650). */
  days?: number;
}

/** Thrown when an openssl step fails; `reason` is always "OpensslFailed". */
export class CertError extends Error {
  /** Stable machine-readable reason. */
  readonly reason = "OpensslFailed";
  /** Creates the error with openssl's own message. */
  constructor(message: string) {
    super(message);
    this.name = "CertError";
  }
}

async function openssl(args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new CertError(`openssl ${args[0]} failed (exit ${out.code}): ${err}`);
  }
}

function keygenArgs(keyType: KeyType): string[] {
  return keyType === "rsa"
    ? ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    : ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
}

function subject(cn: string, organizations: string[] = []): string {
  for (const v of [cn, ...organizations]) {
    if (/[\/=+,\\]/.test(v)) throw new CertError(`unsupported character in subject value "${v}"`);
  }
  return organizations.map((o) => `/O=${o}`).join("") + `/CN=${cn}`;
}

function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] &= 0x7f; // keep it positive
  return "0x" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function isIp(s: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(s) || s.includes(":");
}

/** Creates a self-signed CA named `name` in `dir` (files `<name>.crt`, `<name>.key`). */
export async function makeCA(
  dir: string,
  name: string,
  opts: { keyType?: KeyType; days?: number } = {},
): Promise<CertAuthority> {
  const certFile = `${dir}/${name}.crt`;
  const keyFile = `${dir}/${name}.key`;
  const cnf = `${dir}/${name}.ca.cnf`;
  await Deno.writeTextFile(
    cnf,
    [
      "[req]",
      "distinguished_name = dn",
      "x509_extensions = v3_ca",
      "prompt = no",
      "[dn]",
      `CN = ${name}`,
      "[v3_ca]",
      "basicConstraints = critical, CA:TRUE",
      "keyUsage = critical, keyCertSign, cRLSign, digitalSignature",
      "subjectKeyIdentifier = hash",
      "",
    ].join("\n"),
  );
  await openssl(["genpkey", ...keygenArgs(opts.keyType ?? "ec"), "-out", keyFile]);
  await openssl([
    "req",
    "-x509",
    "-new",
    "-config",
    cnf,
    "-key",
    keyFile,
    "-out",
    certFile,
    "-days",
    String(opts.days ?? 3650),
    "-set_serial",
    randomSerial(),
  ]);
  return {
    name,
    certFile,
    keyFile,
    certPem: await Deno.readTextFile(certFile),
    keyPem: await Deno.readTextFile(keyFile),
  };
}

/** Issues a serving (default) or client certificate signed by `ca`, written into `dir`. */
export async function makeCert(
  dir: string,
  ca: CertAuthority,
  opts: CertOptions,
): Promise<IssuedCert> {
  const base = opts.name ?? opts.cn.replace(/[^A-Za-z0-9_.-]/g, "_");
  const certFile = `${dir}/${base}.crt`;
  const keyFile = `${dir}/${base}.key`;
  const csrFile = `${dir}/${base}.csr`;
  const extFile = `${dir}/${base}.ext.cnf`;
  const sans = opts.sans ?? [];
  const ext = [
    "[v3]",
    "basicConstraints = critical, CA:FALSE",
    `keyUsage = critical, digitalSignature${opts.keyType === "rsa" ? ", keyEncipherment" : ""}`,
    `extendedKeyUsage = ${opts.client ? "clientAuth" : "serverAuth"}`,
    "authorityKeyIdentifier = keyid",
  ];
  if (sans.length > 0) {
    ext.push(
      "subjectAltName = " + sans.map((s) => (isIp(s) ? `IP:${s}` : `DNS:${s}`)).join(", "),
    );
  }
  await Deno.writeTextFile(extFile, ext.join("\n") + "\n");
  await openssl(["genpkey", ...keygenArgs(opts.keyType ?? "ec"), "-out", keyFile]);
  await openssl([
    "req",
    "-new",
    "-key",
    keyFile,
    "-subj",
    subject(opts.cn, opts.organizations),
    "-out",
    csrFile,
  ]);
  await openssl([
    "x509",
    "-req",
    "-in",
    csrFile,
    "-CA",
    ca.certFile,
    "-CAkey",
    ca.keyFile,
    "-set_serial",
    randomSerial(),
    "-days",
    String(opts.days ?? 3650),
    "-extfile",
    extFile,
    "-extensions",
    "v3",
    "-out",
    certFile,
  ]);
  return {
    certFile,
    keyFile,
    certPem: await Deno.readTextFile(certFile),
    keyPem: await Deno.readTextFile(keyFile),
  };
}

/** Creates a bare key pair in `dir` (`<name>.key`, `<name>.pub`), e.g. a token signing key. */
export async function makeKeyPair(
  dir: string,
  name: string,
  opts: { keyType?: KeyType } = {},
): Promise<KeyPair> {
  const privateKeyFile = `${dir}/${name}.key`;
  const publicKeyFile = `${dir}/${name}.pub`;
  await openssl(["genpkey", ...keygenArgs(opts.keyType ?? "ec"), "-out", privateKeyFile]);
  await openssl(["pkey", "-in", privateKeyFile, "-pubout", "-out", publicKeyFile]);
  return {
    privateKeyFile,
    publicKeyFile,
    privateKeyPem: await Deno.readTextFile(privateKeyFile),
    publicKeyPem: await Deno.readTextFile(publicKeyFile),
  };
}
