/**
 * A throwaway Redis Cluster for tests: cluster-enabled `redis-server` processes on free loopback
 * ports, their state in a temporary directory, joined by `redis-cli --cluster create` without
 * replicas. Never touches the shared Redis.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { waitFor } from './redis.js';

const run = promisify(execFile);

/** A running test cluster. */
export interface RedisClusterHandle {
  /** Client ports of the masters. */
  ports: number[];
  /** `redis://127.0.0.1:<first port>`: a seed node for REDIS_URL. */
  seedUrl: string;
  /** Stops every node and deletes their directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** True when nothing listens on `port` on loopback. */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A free client port whose cluster bus port (client port + 10000) is free as well. */
async function freeClusterPort(taken: number[]): Promise<number> {
  for (let tries = 0; tries < 50; tries += 1) {
    // 20000-45000: the bus port must stay below 65536 and out of the ephemeral range's way.
    const port = 20_000 + Math.floor(Math.random() * 25_000);
    if (taken.some((other) => Math.abs(other - port) < 2)) continue;
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) return port;
  }
  throw new Error('no free port pair for a cluster node');
}

/** Runs one command on one node with a short-lived connection. */
async function onNode<T>(port: number, command: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await command(redis);
  } finally {
    redis.disconnect();
  }
}

/** Stops a node: SIGTERM, SIGKILL if it lingers. */
async function stopNode(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** Starts `masters` cluster nodes, creates the cluster and waits until every node reports it ok. */
export async function startRedisCluster(masters = 3): Promise<RedisClusterHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'revoker-cluster-'));
  const nodes: ChildProcess[] = [];
  const ports: number[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(nodes.map(stopNode));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i += 1) {
      const port = await freeClusterPort(ports);
      ports.push(port);
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--appendonly', 'no', '--save', '', '--maxmemory-policy', 'noeviction'];
      nodes.push(spawn('redis-server', args, { stdio: 'ignore' }));
    }
    for (const port of ports) {
      await waitFor(() => onNode(port, async (redis) => (await redis.ping()) === 'PONG').catch(() => false), `cluster node ${port} to answer`, 10_000);
    }
    await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes']);
    for (const port of ports) {
      await waitFor(() => onNode(port, async (redis) => String(await redis.call('CLUSTER', 'INFO')).includes('cluster_state:ok')), `cluster node ${port} to report cluster_state:ok`, 15_000);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { ports, seedUrl: `redis://127.0.0.1:${ports[0]}`, stop };
}
