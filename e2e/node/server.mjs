// Starts the Rust e2e server (crates/socketio/examples/e2e_server.rs) on a
// free port for a test file, and stops it afterwards.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

export async function startServer(extraArgs = []) {
  const port = await freePort();
  const bin = process.env.DUPLEX_E2E_SERVER ?? path.join(root, "target/release/examples/e2e_server");
  const child = spawn(bin, [`127.0.0.1:${port}`, ...extraArgs], { stdio: ["ignore", "inherit", "pipe"] });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("e2e_server did not start")), 10000);
    child.stderr.on("data", (chunk) => {
      process.stderr.write(chunk);
      if (String(chunk).includes("listening")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => reject(new Error(`e2e_server exited with ${code}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => child.kill("SIGKILL"),
  };
}
