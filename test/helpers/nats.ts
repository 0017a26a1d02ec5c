/** The nats-server launcher of the NATS tests lives in testing/ (the bench uses it too). */
export * from "../../testing/nats.js";
