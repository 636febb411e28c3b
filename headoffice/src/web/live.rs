//! The overview of every branch, kept current: one task per server looks for changes in the
//! database every half second (a handful of aggregates), rebuilds the overview when something
//! changed, and tells every open page which branches changed. However many pages are open,
//! the database sees one poller.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use protocols::BranchId;
use protocols::time::Timestamp;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::coverage;
use crate::db::{ChangeMarker, DbError, Store};
use crate::directory::Directory;

/// How a tile looks, worst first (the default sort).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TileState {
    /// A required zone is unwatched, an alarm waits for acknowledgement, or the gateway is
    /// offline.
    Red,
    /// A device is not online, or the gateway has gone quiet (stale).
    Amber,
    /// Nothing received from this branch yet.
    Grey,
    Green,
}

impl TileState {
    pub fn as_str(self) -> &'static str {
        match self {
            TileState::Red => "red",
            TileState::Amber => "amber",
            TileState::Grey => "grey",
            TileState::Green => "green",
        }
    }
}

/// One branch on the overview.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub id: BranchId,
    pub name: String,
    pub region: String,
    pub state: TileState,
    /// `online`, `offline`, `stale` (says online, but nothing heard for a while) or `unknown`.
    pub gateway: &'static str,
    pub gateway_since: Option<Timestamp>,
    pub cameras_online: u32,
    pub cameras_total: u32,
    pub cameras_live_video: Option<u32>,
    pub required_zones: u32,
    /// Names of the required zones nobody watches, and since when.
    pub uncovered: Vec<(String, Option<Timestamp>)>,
    pub devices_down: u32,
    pub open_alarms: u32,
    /// Rectification orders not yet verified or closed.
    pub orders: u32,
    /// When the branch was last heard from (any retained value).
    pub last_heard: Option<Timestamp>,
}

impl Tile {
    pub fn uncovered_since(&self) -> Option<Timestamp> {
        self.uncovered.iter().filter_map(|(_, s)| *s).min()
    }
}

/// Every branch, sorted by id.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub at: Timestamp,
    pub tiles: Vec<Tile>,
    /// Set when the last look at the database failed: what is shown may be old.
    pub db_error: Option<String>,
}

impl Overview {
    pub fn count(&self, s: TileState) -> usize {
        self.tiles.iter().filter(|t| t.state == s).count()
    }

    pub fn get(&self, id: &BranchId) -> Option<&Tile> {
        self.tiles.binary_search_by(|t| t.id.cmp(id)).ok().map(|i| &self.tiles[i])
    }
}

/// Reads the database and builds the overview.
pub async fn build(store: &Store, dir: &Directory, now: Timestamp, stale_after: Duration) -> Result<Overview, DbError> {
    let snap = store.snapshot().await?;
    let alarms = store.open_alarm_counts().await?;
    let orders = store.active_order_counts().await?;
    let view = coverage::summarize(&snap, now);
    let stale_after = chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::MAX);
    let mut tiles: HashMap<BranchId, Tile> = HashMap::with_capacity(view.branches.len() + dir.len());
    for b in view.branches {
        let heard =
            [snap.gateways.get(&b.branch).map(|g| g.received_at), snap.coverage.get(&b.branch).map(|c| c.received_at)]
                .into_iter()
                .flatten()
                .max();
        let mut gateway = b.gateway;
        if gateway == "online" && heard.is_some_and(|h| now.signed_duration_since(h) > stale_after) {
            gateway = "stale";
        }
        let info = dir.get(&b.branch);
        let open_alarms = alarms.get(b.branch.as_str()).copied().unwrap_or(0);
        let uncovered: Vec<(String, Option<Timestamp>)> =
            b.uncovered_zones.iter().map(|z| (z.name.clone(), z.since)).collect();
        let devices_down = u32::try_from(b.devices_not_online.len()).unwrap_or(u32::MAX);
        let state = if !uncovered.is_empty() || open_alarms > 0 || gateway == "offline" {
            TileState::Red
        } else if devices_down > 0 || b.cameras_online < b.cameras_total || gateway == "stale" {
            TileState::Amber
        } else if gateway == "unknown" && b.coverage_at.is_none() {
            TileState::Grey
        } else {
            TileState::Green
        };
        tiles.insert(
            b.branch.clone(),
            Tile {
                name: info.map(|i| i.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| b.branch.to_string()),
                region: info.map(|i| i.region.clone()).unwrap_or_default(),
                id: b.branch,
                state,
                gateway,
                gateway_since: b.gateway_since,
                cameras_online: b.cameras_online,
                cameras_total: b.cameras_total,
                cameras_live_video: b.cameras_live_video,
                required_zones: b.required_zones,
                uncovered,
                devices_down,
                open_alarms,
                orders: 0,
                last_heard: heard,
            },
        );
    }
    // Alarms of branches with no retained state, and directory branches never heard from.
    for (branch, n) in &alarms {
        let Ok(id) = BranchId::new(branch.clone()) else { continue };
        if let Some(t) = tiles.get_mut(&id) {
            t.open_alarms = *n;
        } else {
            let mut t = empty_tile(id, dir);
            t.open_alarms = *n;
            t.state = TileState::Red;
            tiles.insert(t.id.clone(), t);
        }
    }
    for info in dir.branches() {
        if !tiles.contains_key(&info.id) {
            tiles.insert(info.id.clone(), empty_tile(info.id.clone(), dir));
        }
    }
    for (branch, n) in &orders {
        if let Ok(id) = BranchId::new(branch.clone())
            && let Some(t) = tiles.get_mut(&id)
        {
            t.orders = *n;
        }
    }
    let mut tiles: Vec<Tile> = tiles.into_values().collect();
    tiles.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Overview { at: now, tiles, db_error: None })
}

fn empty_tile(id: BranchId, dir: &Directory) -> Tile {
    let info = dir.get(&id);
    Tile {
        name: info.map(|i| i.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| id.to_string()),
        region: info.map(|i| i.region.clone()).unwrap_or_default(),
        id,
        state: TileState::Grey,
        gateway: "unknown",
        gateway_since: None,
        cameras_online: 0,
        cameras_total: 0,
        cameras_live_video: None,
        required_zones: 0,
        uncovered: Vec::new(),
        devices_down: 0,
        open_alarms: 0,
        orders: 0,
        last_heard: None,
    }
}

/// The shortest time between two looks at the database.
const MIN_GAP: Duration = Duration::from_millis(100);

/// What the open pages are told.
#[derive(Debug, Clone)]
pub enum Change {
    /// These branches' tiles changed (the new overview is in the hub).
    Tiles(Arc<Vec<BranchId>>),
    /// Alerts or acknowledgements were stored: lists should refresh.
    Alerts,
    /// The database could not be read (`Some`), or can be again (`None`).
    Db(Option<String>),
}

/// The current overview and the channel that announces changes to it.
pub struct Hub {
    current: RwLock<Arc<Overview>>,
    tx: broadcast::Sender<Change>,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        let (tx, _) = broadcast::channel(256);
        Arc::new(Hub { current: RwLock::new(Arc::new(Overview::default())), tx })
    }

    pub fn current(&self) -> Arc<Overview> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// Replaces the overview without announcing it (before any page is open).
    pub fn set(&self, o: Overview) {
        self.replace(o);
    }

    fn replace(&self, o: Overview) -> Arc<Overview> {
        let o = Arc::new(o);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = o.clone();
        o
    }

    /// Builds the first overview, then keeps it current until `shutdown`.
    pub async fn run(
        self: Arc<Hub>,
        store: Store,
        dir: Arc<Directory>,
        every: Duration,
        stale_after: Duration,
        changed: Option<Arc<tokio::sync::Notify>>,
        shutdown: CancellationToken,
    ) {
        let mut marker: Option<ChangeMarker> = None;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Stale gateways and "since" texts change with time alone: rebuild now and then anyway.
        let rebuild_every = (Duration::from_secs(5).as_millis() / every.as_millis().max(1)).max(1);
        let mut ticks: u128 = 0;
        let mut db_down = false;
        let mut last_look = tokio::time::Instant::now();
        loop {
            let poked = async {
                match &changed {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = poked => {}
            }
            // Under a stream of commits, one rebuild per MIN_GAP at most: later commits are
            // taken in by the next one.
            if let Some(left) = MIN_GAP.checked_sub(last_look.elapsed()) {
                tokio::time::sleep(left).await;
            }
            last_look = tokio::time::Instant::now();
            ticks += 1;
            let m = match store.change_marker().await {
                Ok(m) => m,
                Err(e) => {
                    if !db_down {
                        tracing::error!(error = %e, "the console cannot read the database; showing the last known state");
                        db_down = true;
                        let mut o = (*self.current()).clone();
                        o.db_error = Some(e.to_string());
                        self.replace(o);
                        let _ = self.tx.send(Change::Db(Some(e.to_string())));
                    }
                    continue;
                }
            };
            let changed = marker.as_ref() != Some(&m);
            if !changed && !ticks.is_multiple_of(rebuild_every) && !db_down {
                continue;
            }
            let alerts_changed = marker.as_ref().is_some_and(|old| alerts_part(old) != alerts_part(&m));
            match build(&store, &dir, protocols::time::now(), stale_after).await {
                Ok(o) => {
                    if db_down {
                        tracing::info!("the console reads the database again");
                        db_down = false;
                        let _ = self.tx.send(Change::Db(None));
                    }
                    let old = self.current();
                    let diff = changed_tiles(&old, &o);
                    self.replace(o);
                    marker = Some(m);
                    if !diff.is_empty() {
                        let _ = self.tx.send(Change::Tiles(Arc::new(diff)));
                    }
                    if alerts_changed {
                        let _ = self.tx.send(Change::Alerts);
                    }
                }
                Err(e) => {
                    if !db_down {
                        tracing::error!(error = %e, "the console cannot read the database; showing the last known state");
                        db_down = true;
                        let mut o = (*self.current()).clone();
                        o.db_error = Some(e.to_string());
                        self.replace(o);
                        let _ = self.tx.send(Change::Db(Some(e.to_string())));
                    }
                }
            }
        }
    }
}

/// The parts of the marker that say alerts or acknowledgements changed.
fn alerts_part(m: &ChangeMarker) -> ChangeMarker {
    m.alerts()
}

/// Branches whose tile differs between two overviews (added, changed or gone).
pub fn changed_tiles(old: &Overview, new: &Overview) -> Vec<BranchId> {
    let mut out = Vec::new();
    for t in &new.tiles {
        if old.get(&t.id) != Some(t) {
            out.push(t.id.clone());
        }
    }
    for t in &old.tiles {
        if new.get(&t.id).is_none() {
            out.push(t.id.clone());
        }
    }
    out
}
