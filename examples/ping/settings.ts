/**
 * Settings of the ping example: two apps by name. The same file as JSON is
 * `tilth.json` beside this one (classes named by module path there).
 */
import { LongRunningApp, PingApp } from "./apps.js";

export default {
  apps: {
    ping: {
      class: PingApp,
      bind: "drpc+tcp://127.0.0.1:9990",
    },
    long_running: {
      class: LongRunningApp,
      uses: ["ping"],
      options: { interval: 1000 },
    },
  },
};
