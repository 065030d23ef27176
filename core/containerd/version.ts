// The version our containerd reports (Version service, `containerd --version`) and ctr prints.
// It names the containerd API it speaks (1.6.20) and bunker's own version as semver build metadata.
import pkg from "../../package.json" with { type: "json" };

export const BUNKER_VERSION: string = pkg.version;
export const CONTAINERD_API_VERSION = "1.6.20";
export const CONTAINERD_VERSION = `${CONTAINERD_API_VERSION}+bunker.${BUNKER_VERSION}`;
export const CONTAINERD_REVISION = `bunker-${BUNKER_VERSION}`;
export const CONTAINERD_PACKAGE = "github.com/bunker/bunker";
