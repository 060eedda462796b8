/**
 * Amazon ECR private registry host names: `<account>.dkr.ecr.<region>.amazonaws.com` and its
 * FIPS (`dkr.ecr-fips`), China (`.amazonaws.com.cn`), dual-stack (`dkr-ecr.<region>.on.aws`)
 * and isolated-partition forms. Used by the schema (method `ecr` needs an ECR host) and by
 * the ECR credential resolver (which region and account to ask for a token).
 * @module
 */

const ECR_HOST_RE =
  /^(\d{12})\.dkr([.-])ecr(-fips)?\.([a-z0-9][a-z0-9-]*)\.(amazonaws\.com(?:\.cn)?|amazonaws\.eu|on\.aws|on\.amazonwebservices\.com\.cn|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$/;

/** What an ECR registry host says about where it lives. */
export interface EcrHost {
  /** The 12-digit AWS account id (the registry id). */
  accountId: string;
  /** AWS region, e.g. `us-east-1`, `us-gov-west-1`, `cn-north-1`. */
  region: string;
  /** AWS partition the region belongs to. */
  partition:
    | "aws"
    | "aws-us-gov"
    | "aws-cn"
    | "aws-iso"
    | "aws-iso-b"
    | "aws-iso-e"
    | "aws-iso-f"
    | "aws-eusc";
  /** Whether this is a FIPS endpoint (`dkr.ecr-fips`). */
  fips: boolean;
  /** Whether this is a dual-stack (IPv4+IPv6) endpoint (`dkr-ecr.<region>.on.aws`). */
  dualStack: boolean;
  /** The host as given, lowercased, without a port. */
  host: string;
}

const SUFFIX_PARTITION: Record<string, EcrHost["partition"]> = {
  "amazonaws.com.cn": "aws-cn",
  "on.amazonwebservices.com.cn": "aws-cn",
  "c2s.ic.gov": "aws-iso",
  "sc2s.sgov.gov": "aws-iso-b",
  "cloud.adc-e.uk": "aws-iso-e",
  "csp.hci.ic.gov": "aws-iso-f",
  "amazonaws.eu": "aws-eusc",
};

/**
 * Parses an ECR private registry host (a `:443` port and a path after the host are ignored);
 * returns undefined for anything else, including `public.ecr.aws`.
 */
export function parseEcrHost(registry: string): EcrHost | undefined {
  const host = registry.split("/")[0].replace(/:443$/, "").toLowerCase();
  const m = ECR_HOST_RE.exec(host);
  if (!m) return undefined;
  const [, accountId, sep, fips, region, suffix] = m;
  const dualStack = suffix.startsWith("on.");
  // Dual-stack hosts use "dkr-ecr"; the classic ones use "dkr.ecr".
  if ((sep === "-") !== dualStack) return undefined;
  let partition = SUFFIX_PARTITION[suffix] ?? "aws";
  if (partition === "aws" && region.startsWith("us-gov-")) partition = "aws-us-gov";
  if (partition === "aws" && region.startsWith("cn-")) return undefined; // China regions live under .com.cn
  return { accountId, region, partition, fips: fips !== undefined, dualStack, host };
}
