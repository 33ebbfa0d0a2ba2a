/**
 * The test broker's group coordinator: JoinGroup/SyncGroup/Heartbeat/LeaveGroup with generations,
 * rebalances when members come and go, session and rebalance timeouts; OffsetCommit/OffsetFetch
 * with the generation checks of a real broker; DescribeGroups, ListGroups, DeleteGroups. Each
 * handler reads its request body and returns the response body (a promise while a join or sync
 * waits for the rest of the group).
 */
import type { Reader } from "./codec.ts";
import { Writer } from "./codec.ts";
import { ErrorCode } from "./codes.ts";

/** Who sent a request: kept on the member for DescribeGroups. */
export interface Context {
  clientId: string;
  clientHost: string;
}

interface Member {
  id: string;
  clientId: string;
  clientHost: string;
  sessionTimeout: number;
  rebalanceTimeout: number;
  protocols: Array<[name: string, metadata: Uint8Array]>;
  lastSeen: number;
  assignment: Uint8Array;
  join?: (answer: Writer) => void;
  sync?: (answer: Writer) => void;
}

type GroupState = "Empty" | "PreparingRebalance" | "CompletingRebalance" | "Stable";

interface Group {
  id: string;
  state: GroupState;
  generation: number;
  protocolType?: string;
  protocol?: string;
  leader?: string;
  members: Map<string, Member>;
  /** Committed offsets by `topic\0partition`. */
  offsets: Map<string, { offset: number; metadata: string | null }>;
  rebalanceTimer?: ReturnType<typeof setTimeout>;
}

export class GroupCoordinator {
  readonly groups = new Map<string, Group>();

  readonly hasPartition: (topic: string, index: number) => boolean;
  /** `hasPartition` says whether a topic-partition exists, for offset commits. */
  constructor(hasPartition: (topic: string, index: number) => boolean) {
    this.hasPartition = hasPartition;
  }

  stop(): void {
    for (const group of this.groups.values()) clearTimeout(group.rebalanceTimer);
  }

  #group(id: string, create = false): Group | undefined {
    let group = this.groups.get(id);
    if (!group && create) {
      group = { id, state: "Empty", generation: 0, members: new Map(), offsets: new Map() };
      this.groups.set(id, group);
    }
    return group;
  }

  joinGroup(r: Reader, ctx: Context): Promise<Writer> | Writer {
    const groupId = r.string();
    const sessionTimeout = r.int32();
    const rebalanceTimeout = r.int32();
    let memberId = r.string();
    const protocolType = r.string();
    const protocols = r.array((r) => [r.string(), r.bytesField()] as [string, Uint8Array]);
    const fail = (error: number) =>
      new Writer().int32(0).int16(error).int32(-1).string("").string("").string(memberId).array([], () => {});
    const group = this.#group(groupId, true)!;
    if (memberId && !group.members.has(memberId)) return fail(ErrorCode.UNKNOWN_MEMBER_ID);
    if (group.members.size > 0 && group.protocolType !== protocolType) {
      return fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    }
    memberId ||= `${ctx.clientId || "member"}-${crypto.randomUUID()}`;
    const member: Member = {
      ...group.members.get(memberId),
      id: memberId,
      clientId: ctx.clientId,
      clientHost: ctx.clientHost,
      sessionTimeout,
      rebalanceTimeout,
      protocols,
      lastSeen: Date.now(),
      assignment: group.members.get(memberId)?.assignment ?? new Uint8Array(),
    };
    group.members.set(memberId, member);
    group.protocolType = protocolType;
    return new Promise<Writer>((resolve) => {
      member.join = resolve;
      if (group.state !== "PreparingRebalance") this.#prepareRebalance(group);
      this.#tryCompleteJoin(group);
    });
  }

  #prepareRebalance(group: Group): void {
    group.state = "PreparingRebalance";
    for (const m of group.members.values()) {
      m.sync?.(new Writer().int32(0).int16(ErrorCode.REBALANCE_IN_PROGRESS).bytes(new Uint8Array()));
      m.sync = undefined;
    }
    const timeout = Math.max(0, ...[...group.members.values()].map((m) => m.rebalanceTimeout));
    clearTimeout(group.rebalanceTimer);
    group.rebalanceTimer = setTimeout(() => {
      // Members that did not rejoin in time are out.
      for (const [id, m] of group.members) if (!m.join) group.members.delete(id);
      this.#completeJoin(group);
    }, timeout);
  }

  #tryCompleteJoin(group: Group): void {
    if (group.state === "PreparingRebalance" && [...group.members.values()].every((m) => m.join)) {
      this.#completeJoin(group);
    }
  }

  #completeJoin(group: Group): void {
    clearTimeout(group.rebalanceTimer);
    group.rebalanceTimer = undefined;
    const members = [...group.members.values()];
    group.generation++;
    if (members.length === 0) {
      group.state = "Empty";
      group.leader = undefined;
      group.protocol = undefined;
      return;
    }
    if (!group.leader || !group.members.has(group.leader)) group.leader = members[0].id;
    const leader = group.members.get(group.leader)!;
    group.protocol = leader.protocols.map(([name]) => name)
      .find((name) => members.every((m) => m.protocols.some(([n]) => n === name))) ??
      leader.protocols[0]?.[0];
    group.state = "CompletingRebalance";
    for (const m of members) {
      const w = new Writer().int32(0).int16(ErrorCode.NONE).int32(group.generation)
        .string(group.protocol ?? "").string(group.leader).string(m.id);
      w.array(m.id === group.leader ? members : [], (w, other) => {
        w.string(other.id).bytes(
          other.protocols.find(([n]) => n === group.protocol)?.[1] ?? new Uint8Array(),
        );
      });
      m.lastSeen = Date.now();
      m.join?.(w);
      m.join = undefined;
    }
  }

  syncGroup(r: Reader): Promise<Writer> | Writer {
    const group = this.#group(r.string());
    const generation = r.int32();
    const memberId = r.string();
    const assignments = r.array((r) => [r.string(), r.bytesField()] as [string, Uint8Array]);
    const answer = (error: number, assignment: Uint8Array = new Uint8Array()) =>
      new Writer().int32(0).int16(error).bytes(assignment);
    const member = group?.members.get(memberId);
    if (!group || !member) return answer(ErrorCode.UNKNOWN_MEMBER_ID);
    if (generation !== group.generation) return answer(ErrorCode.ILLEGAL_GENERATION);
    if (group.state === "PreparingRebalance") return answer(ErrorCode.REBALANCE_IN_PROGRESS);
    member.lastSeen = Date.now();
    if (group.state === "Stable") return answer(ErrorCode.NONE, member.assignment);
    return new Promise<Writer>((resolve) => {
      member.sync = resolve;
      if (memberId !== group.leader) return;
      const given = new Map(assignments);
      for (const m of group.members.values()) m.assignment = given.get(m.id) ?? new Uint8Array();
      group.state = "Stable";
      for (const m of group.members.values()) {
        m.sync?.(answer(ErrorCode.NONE, m.assignment));
        m.sync = undefined;
      }
    });
  }

  heartbeat(r: Reader): Writer {
    const group = this.#group(r.string());
    const generation = r.int32();
    const member = group?.members.get(r.string());
    const answer = (error: number) => new Writer().int32(0).int16(error);
    if (!group || !member) return answer(ErrorCode.UNKNOWN_MEMBER_ID);
    member.lastSeen = Date.now();
    if (group.state === "PreparingRebalance") return answer(ErrorCode.REBALANCE_IN_PROGRESS);
    if (generation !== group.generation) return answer(ErrorCode.ILLEGAL_GENERATION);
    return answer(ErrorCode.NONE);
  }

  leaveGroup(r: Reader): Writer {
    const group = this.#group(r.string());
    const memberId = r.string();
    if (!group?.members.has(memberId)) return new Writer().int32(0).int16(ErrorCode.UNKNOWN_MEMBER_ID);
    this.#removeMember(group, memberId);
    return new Writer().int32(0).int16(ErrorCode.NONE);
  }

  #removeMember(group: Group, memberId: string): void {
    const member = group.members.get(memberId);
    group.members.delete(memberId);
    member?.join?.(
      new Writer().int32(0).int16(ErrorCode.UNKNOWN_MEMBER_ID).int32(-1).string("").string("").string(
        memberId,
      )
        .array([], () => {}),
    );
    member?.sync?.(new Writer().int32(0).int16(ErrorCode.UNKNOWN_MEMBER_ID).bytes(new Uint8Array()));
    if (group.members.size === 0) {
      clearTimeout(group.rebalanceTimer);
      group.rebalanceTimer = undefined;
      group.state = "Empty";
      group.leader = undefined;
      group.generation++;
    } else if (group.state === "PreparingRebalance") {
      this.#tryCompleteJoin(group);
    } else {
      this.#prepareRebalance(group);
    }
  }

  /** Members silent for longer than their session timeout are removed, as a real broker does. */
  expireMembers(): void {
    const now = Date.now();
    for (const group of this.groups.values()) {
      for (const m of [...group.members.values()]) {
        if (!m.join && !m.sync && m.lastSeen + m.sessionTimeout < now) this.#removeMember(group, m.id);
      }
    }
  }

  offsetCommit(r: Reader): Writer {
    const groupId = r.string();
    const generation = r.int32();
    const memberId = r.string();
    r.int64();
    const topics = r.array((r) => ({
      name: r.string(),
      partitions: r.array((r) => ({ index: r.int32(), offset: r.int64(), metadata: r.nullableString() })),
    }));
    const group = this.#group(groupId, true)!;
    let error: number = ErrorCode.NONE;
    if (generation < 0 && group.state === "Empty") error = ErrorCode.NONE;
    else if (group.state === "CompletingRebalance" || group.state === "PreparingRebalance") {
      error = ErrorCode.REBALANCE_IN_PROGRESS;
    } else if (!group.members.has(memberId)) error = ErrorCode.UNKNOWN_MEMBER_ID;
    else if (generation !== group.generation) error = ErrorCode.ILLEGAL_GENERATION;
    return new Writer().array(topics, (w, t) => {
      w.string(t.name).array(t.partitions, (w, p) => {
        let code = error;
        if (code === ErrorCode.NONE && !this.hasPartition(t.name, p.index)) {
          code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
        }
        if (code === ErrorCode.NONE) {
          group.offsets.set(`${t.name}\0${p.index}`, { offset: p.offset, metadata: p.metadata });
        }
        w.int32(p.index).int16(code);
      });
    });
  }

  offsetFetch(r: Reader): Writer {
    const group = this.#group(r.string());
    const requested = r.nullableArray((r) => ({ name: r.string(), partitions: r.array((r) => r.int32()) }));
    let topics = requested;
    if (!topics) {
      const byTopic = new Map<string, number[]>();
      for (const key of group?.offsets.keys() ?? []) {
        const [name, index] = key.split("\0");
        byTopic.set(name, [...(byTopic.get(name) ?? []), Number(index)]);
      }
      topics = [...byTopic].map(([name, partitions]) => ({ name, partitions }));
    }
    return new Writer().array(topics, (w, t) => {
      w.string(t.name).array(t.partitions, (w, index) => {
        const committed = group?.offsets.get(`${t.name}\0${index}`);
        w.int32(index).int64(committed?.offset ?? -1).string(committed?.metadata ?? "").int16(ErrorCode.NONE);
      });
    }).int16(ErrorCode.NONE);
  }

  describeGroups(r: Reader): Writer {
    const ids = r.array((r) => r.string());
    return new Writer().array(ids, (w, id) => {
      const group = this.groups.get(id);
      w.int16(ErrorCode.NONE).string(id).string(group?.state ?? "Dead").string(group?.protocolType ?? "")
        .string(group?.protocol ?? "");
      w.array(group ? [...group.members.values()] : [], (w, m) => {
        w.string(m.id).string(m.clientId).string(m.clientHost)
          .bytes(m.protocols.find(([n]) => n === group?.protocol)?.[1] ?? new Uint8Array()).bytes(
            m.assignment,
          );
      });
    });
  }

  listGroups(): Writer {
    return new Writer().int16(ErrorCode.NONE).array([...this.groups.values()], (w, g) => {
      w.string(g.id).string(g.protocolType ?? "");
    });
  }

  deleteGroups(r: Reader): Writer {
    const ids = r.array((r) => r.string());
    return new Writer().int32(0).array(ids, (w, id) => {
      const group = this.groups.get(id);
      let error: number = ErrorCode.NONE;
      if (!group) error = ErrorCode.GROUP_ID_NOT_FOUND;
      else if (group.members.size > 0) error = ErrorCode.NON_EMPTY_GROUP;
      else this.groups.delete(id);
      w.string(id).int16(error);
    });
  }
}
