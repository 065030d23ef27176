// The metadata store: one import for the services.
export * from "./db";
export * from "./namespaces";
export * from "./images";
export * from "./leases";
export * from "./content";
export * from "./snapshots";
export * from "./containers";
