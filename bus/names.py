"""Every Redis key and stream name Vigil uses, in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Camera and rule ids travel in keys and URLs, so they are kept to a safe alphabet.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)


def valid_id(value: str) -> bool:
    return bool(_ID_RE.match(value)) and ".." not in value


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix; a prefix per run isolates one-shot CLI runs on a shared Redis."""

    prefix: str = "vigil:"

    # -- streams ------------------------------------------------------------------
    def frames(self, camera: str) -> str:
        return f"{self.prefix}frames:{camera}"

    @property
    def packets(self) -> str:
        return f"{self.prefix}packets"

    @property
    def activities(self) -> str:
        """Stream of ActivityNote: the scheduler's activity start / packet / end, per camera in
        capture order (read by the alerts stage, group `alert-activity`)."""
        return f"{self.prefix}activities"

    def activity_ref(self, activity: str) -> str:
        """Activity id -> the entry id of its `start` note (which holds the onset frame)."""
        return f"{self.prefix}act:{activity}"

    @property
    def packets_skipped(self) -> str:
        """Stream of PacketSkipped: packets the analyzer will never write an event for."""
        return f"{self.prefix}packets:skipped"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    @property
    def alert_commands(self) -> str:
        """Stream of AlertCommand from the API to the alerts stage (group `alert-commands`)."""
        return f"{self.prefix}alert:commands"

    ALERT_COMMANDS = "alert-commands"

    @property
    def replay_jobs(self) -> str:
        return f"{self.prefix}replay:jobs"

    def replay_state(self, job: str) -> str:
        """Hash: state, scanned, error, finished."""
        return f"{self.prefix}replay:state:{job}"

    def replay_results(self, job: str) -> str:
        """List of ReplayResult (msgpack), in packet order."""
        return f"{self.prefix}replay:results:{job}"

    # -- consumer groups ----------------------------------------------------------
    ANALYZERS = "analyzers"
    RECORDERS = "recorders"  # the recorder stage's group on `packets` (one clip per packet)
    REPLAYERS = "replayers"
    ALERTERS = "alerters"

    # -- shared state ---------------------------------------------------------------
    @property
    def cameras(self) -> str:
        """Hash: camera id -> Camera (msgpack)."""
        return f"{self.prefix}cameras"

    @property
    def rules(self) -> str:
        """Hash: rule id -> Rule (msgpack)."""
        return f"{self.prefix}rules"

    @property
    def camera_areas(self) -> str:
        """Hash: camera id -> CameraAreas (msgpack): zones and masks, drawn or seeded (bus/zones.py)."""
        return f"{self.prefix}zones"

    def camera_status(self, camera: str) -> str:
        return f"{self.prefix}status:camera:{camera}"

    def scheduler_cursor(self, camera: str) -> str:
        """Last frames-stream id the scheduler has consumed for a camera."""
        return f"{self.prefix}sched:cursor:{camera}"

    def scheduler_done(self, camera: str) -> str:
        """Set when the scheduler has flushed a camera's end of stream (value: last packet id)."""
        return f"{self.prefix}sched:done:{camera}"

    def scheduler_state(self, camera: str) -> str:
        """A scheduler's snapshot of one camera (detector and packer state, msgpack) with the
        cursor it belongs to: a new owner continues exactly where the last one was."""
        return f"{self.prefix}sched:state:{camera}"

    def scheduler_lease(self, camera: str) -> str:
        """String: the scheduler worker id that schedules this camera (PX ttl, renewed by it)."""
        return f"{self.prefix}sched:lease:{camera}"

    @property
    def scheduler_workers(self) -> str:
        """Sorted set: scheduler worker id -> epoch seconds when its heartbeat expires."""
        return f"{self.prefix}sched:workers"

    @property
    def scheduler_stats(self) -> str:
        """Hash of scheduler counters: frames, packets, packets:{camera}, packets_{reason},
        stale_dropped, stale_dropped:{camera}, recalibrations, bad_frames, duplicates (packets
        a new owner rebuilt that were already published), takeovers."""
        return f"{self.prefix}sched:stats"

    def clip(self, packet_id: str) -> str:
        """Clip (msgpack): the WebM of a packet with pre/post-roll (bus/clips.py), kept retention_s."""
        return f"{self.prefix}clip:{packet_id}"

    def event_prompt(self, event_id: str) -> str:
        """JSON {prompt, answer}: what the model was asked for an event and what it said."""
        return f"{self.prefix}prompt:{event_id}"

    def packet_ref(self, packet_id: str) -> str:
        """Packet id -> its entry id in the packets stream (for lookups by id)."""
        return f"{self.prefix}pkt:{packet_id}"

    def once(self, kind: str, item_id: str) -> str:
        """Marker that makes a write idempotent (an event per packet, an alert change per event)."""
        return f"{self.prefix}once:{kind}:{item_id}"

    def open_alert(self, rule: str, camera: str) -> str:
        return f"{self.prefix}alert:open:{rule}:{camera}"

    @property
    def open_alerts_index(self) -> str:
        return f"{self.prefix}alert:open-index"

    def stage_heartbeat(self, stage: str, worker: str) -> str:
        return f"{self.prefix}stage:{stage}:{worker}"

    def analyzer_metrics(self, worker: str) -> str:
        """JSON snapshot of one analyzer worker's metrics (expires when the worker stops)."""
        return f"{self.prefix}metrics:analyzer:{worker}"

    @property
    def metrics_counters(self) -> str:
        """Hash: `name|label values` -> counter value (bus/metrics.py; every process adds)."""
        return f"{self.prefix}metrics:counters"

    @property
    def metrics_histograms(self) -> str:
        """Hash: `name|label values|le` -> cumulative bucket count, `...|sum` -> sum (bus/metrics.py)."""
        return f"{self.prefix}metrics:histograms"

    @property
    def analyzer_metrics_pattern(self) -> str:
        """SCAN pattern matching every analyzer worker's metrics snapshot."""
        return f"{self.prefix}metrics:analyzer:*"

    # -- alerts: lifecycle state, locks, onset reading ------------------------------
    ACTIVITY = "alert-activity"  # the alerts stage's consumer group on `activities`
    WEBHOOKS = "webhooks"  # consumer group on `alerts` and `events` that enqueues deliveries

    def alert_track(self, rule: str, scope: str) -> str:
        """AlertTrack (msgpack) for a rule and a camera or camera group."""
        return f"{self.prefix}alert:track:{rule}:{scope}"

    def alert_flow(self, camera: str) -> str:
        """The alerts stage's per-camera flow (activities going on, packets awaiting their
        verdict, in capture order)."""
        return f"{self.prefix}alert:flow:{camera}"

    @property
    def alert_flows(self) -> str:
        """Set of cameras with a flow."""
        return f"{self.prefix}alert:flows"

    def alert_flow_lock(self, camera: str) -> str:
        return f"{self.prefix}alert:flow-lock:{camera}"

    def alert_lock(self, rule: str, scope: str) -> str:
        """Held while one alerts process changes a rule+scope's state (several may run)."""
        return f"{self.prefix}alert:lock:{rule}:{scope}"

    # -- webhooks: endpoints, the durable delivery queue, dead letters --------------
    @property
    def webhooks(self) -> str:
        """Hash: endpoint id -> WebhookEndpoint (msgpack)."""
        return f"{self.prefix}wh:endpoints"

    def delivery(self, delivery_id: str) -> str:
        """Hash of one delivery: body, headers' inputs, attempts, status, errors."""
        return f"{self.prefix}wh:dlv:{delivery_id}"

    @property
    def deliveries_due(self) -> str:
        """Sorted set: delivery id -> epoch when it is due (only the head of each chain)."""
        return f"{self.prefix}wh:due"

    def delivery_chain(self, endpoint: str, order_key: str) -> str:
        """List: deliveries of one alert to one endpoint, in order; only the head is due."""
        return f"{self.prefix}wh:chain:{endpoint}:{order_key}"

    @property
    def deliveries_index(self) -> str:
        """Sorted set: delivery id -> creation epoch (listing, retention)."""
        return f"{self.prefix}wh:index"

    @property
    def dead_letters(self) -> str:
        """List: delivery ids that used up their retries, oldest first."""
        return f"{self.prefix}wh:dead"

    @property
    def deliveries_wake(self) -> str:
        """List used as a doorbell: enqueueing pushes, idle senders BLPOP."""
        return f"{self.prefix}wh:wake"

    def leader(self, role: str) -> str:
        """Held by the one process that does `role` (ordered fan-out), renewed while it lives."""
        return f"{self.prefix}leader:{role}"

    # -- ingest: leases, workers, WHIP signalling ------------------------------------------
    def ingest_lease(self, camera: str) -> str:
        """String: the ingest worker id that owns this camera (PX ttl, renewed by the owner)."""
        return f"{self.prefix}ingest:lease:{camera}"

    @property
    def ingest_workers(self) -> str:
        """Sorted set: ingest worker id -> epoch seconds when its heartbeat expires."""
        return f"{self.prefix}ingest:workers"

    def whip_requests(self, camera: str) -> str:
        """List: WHIP signalling requests (offer / delete) for the camera's ingest owner."""
        return f"{self.prefix}whip:req:{camera}"

    def whip_reply(self, request_id: str) -> str:
        """List: the one reply to a WHIP signalling request (BLPOP by the web process)."""
        return f"{self.prefix}whip:reply:{request_id}"

    # -- web: dashboard sessions ------------------------------------------------------------
    @property
    def web_session_secret(self) -> str:
        """Random key that signs session cookies, shared by every web process on this Redis."""
        return f"{self.prefix}web:session-secret"

    def web_session(self, session_id: str) -> str:
        """JSON of one dashboard session (who, bound token, expiry); deleting it revokes it."""
        return f"{self.prefix}web:session:{session_id}"

    @property
    def web_sessions(self) -> str:
        """Sorted set: session id -> expiry epoch (listing and revoking every session)."""
        return f"{self.prefix}web:sessions"
