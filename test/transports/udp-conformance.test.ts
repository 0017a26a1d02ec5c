import { datagramConformance } from "../../testing/index.js";
import { datagramCases } from "./datagram-cases.js";

datagramConformance(datagramCases.udp4);
datagramConformance(datagramCases.udp6);
datagramConformance(datagramCases.network);
