//! Granular local search (HGS-CVRP, Vidal 2022): for every customer `u` and each of its
//! correlated neighbours `v`, try relocations, swaps and 2-opt variants, applying the first one
//! that lowers the penalised cost, until no move improves.
//!
//! Inter-route moves rebuild each route from at most four pieces (a prefix of an existing
//! route, one or two single visits, a suffix), so each is priced in O(1) from cached prefix and
//! suffix segments. Intra-route moves are priced by re-folding the candidate route, O(route
//! length); routes are short, and this keeps the rarely-hit intra cases simple. The *same* piece
//! list that prices an inter-route move is used to apply it, so pricing and applying cannot
//! disagree.
//!
//! With a heterogeneous fleet, route slot `r` is vehicle `r`: its prefixes start at that
//! vehicle's depot and its capacity prices the load. Suffixes end at the plain depot (they
//! move between routes in 2-opt*), and a route's own return limit is added when it is priced.

use std::time::Instant;

use crate::model::Problem;
use crate::rng::Rng;
use crate::search::segment::{Penalties, Segment};

/// A move is applied only if it saves more than this (penalties are floats).
const EPS: f64 = 1e-6;

/// One building block of a rebuilt route.
#[derive(Debug, Clone, Copy)]
enum Piece {
    /// The depot followed by the first `k` customers of route `r`.
    Prefix(usize, usize),
    /// One visit.
    Visit(u32),
    /// Customers `k..` of route `r`, then the depot.
    Suffix(usize, usize),
}

/// A circular sector of polar angles (HGS's `CircleSector`), in 1/65536 turns.
#[derive(Debug, Clone, Copy, Default)]
struct Sector {
    start: i32,
    end: i32,
}

impl Sector {
    fn turn(x: i32) -> i32 {
        x.rem_euclid(65536)
    }

    fn contains(&self, a: i32) -> bool {
        Self::turn(a - self.start) <= Self::turn(self.end - self.start)
    }

    /// Grows the sector to include `a`, in the cheaper direction.
    fn extend(&mut self, a: i32) {
        if !self.contains(a) {
            if Self::turn(a - self.end) <= Self::turn(self.start - a) {
                self.end = a;
            } else {
                self.start = a;
            }
        }
    }

    fn overlaps(&self, other: &Sector) -> bool {
        Self::turn(other.start - self.start) <= Self::turn(self.end - self.start)
            || Self::turn(self.start - other.start) <= Self::turn(other.end - other.start)
    }
}

/// Distance and load of the two routes an inter-route move produces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bound {
    dist_a: i64,
    load_a: i64,
    dist_b: i64,
    load_b: i64,
}

/// An inter-route move: new piece lists for `u`'s route (`a`) and the other route (`b`).
#[derive(Debug, Clone, Copy)]
struct InterMove {
    pieces: [Piece; 8],
    split: u8,
    len: u8,
}

impl Default for InterMove {
    fn default() -> Self {
        Self {
            pieces: [Piece::Visit(0); 8],
            split: 0,
            len: 0,
        }
    }
}

impl InterMove {
    fn new(a: &[Piece], b: &[Piece]) -> Self {
        let mut m = Self::default();
        m.pieces[..a.len()].copy_from_slice(a);
        m.pieces[a.len()..a.len() + b.len()].copy_from_slice(b);
        m.split = a.len() as u8;
        m.len = (a.len() + b.len()) as u8;
        m
    }

    fn a(&self) -> &[Piece] {
        &self.pieces[..self.split as usize]
    }

    fn b(&self) -> &[Piece] {
        &self.pieces[self.split as usize..self.len as usize]
    }
}

pub struct LocalSearch<'p> {
    p: &'p Problem,
    /// Granular neighbourhood, per node index (empty for the depot and inactive customers).
    neighbours: Vec<Vec<u32>>,
    customers: Vec<u32>,
    routes: Vec<Vec<u32>>,
    prefix: Vec<Vec<Segment>>,
    suffix: Vec<Vec<Segment>>,
    cost: Vec<f64>,
    /// Distance and load per route (depot to depot).
    dist: Vec<i64>,
    load: Vec<i64>,
    warp_free: Vec<bool>,
    /// Polar angle of each node around the depot, in 1/65536 turns.
    angle: Vec<i32>,
    /// Polar sector of each route, to restrict SWAP* to route pairs that overlap.
    sectors: Vec<Sector>,
    /// Move counter when SWAP* was last run from each route.
    swap_tested: Vec<u64>,
    /// Whether SWAP* runs (it needs coordinates).
    swap_star: bool,
    /// Whether the distance matrix is symmetric (2-opt can then be priced in O(1)).
    symmetric: bool,
    route_of: Vec<usize>,
    pos: Vec<usize>,
    /// Move counter at the last change of each route.
    modified: Vec<u64>,
    /// Move counter when each customer's neighbourhood was last fully tested.
    tested: Vec<u64>,
    moves: u64,
    pen: Penalties,
    /// Whether time windows can bind (otherwise distance and load price every move).
    timed: bool,
    /// Heterogeneous fleet: slot `r` is vehicle `r`.
    hetero: bool,
    /// Capacity per slot.
    caps: Vec<i64>,
    /// Depot (with the vehicle's shift) per slot.
    depots: Vec<Segment>,
    scratch: Vec<u32>,
    scratch_b: Vec<u32>,
}

impl<'p> LocalSearch<'p> {
    pub fn new(
        p: &'p Problem,
        customers: Vec<u32>,
        neighbours: Vec<Vec<u32>>,
        slots: usize,
    ) -> Self {
        let n = p.num_customers() + 1;
        Self {
            p,
            neighbours,
            customers,
            routes: vec![Vec::new(); slots],
            prefix: vec![Vec::new(); slots],
            suffix: vec![Vec::new(); slots],
            cost: vec![0.0; slots],
            dist: vec![0; slots],
            load: vec![0; slots],
            warp_free: vec![true; slots],
            angle: (0..n)
                .map(|i| {
                    let (c, d) = (p.node(i), p.node(0));
                    let turns = (c.y - d.y).atan2(c.x - d.x) / std::f64::consts::TAU;
                    (turns * 65536.0).round() as i32
                })
                .collect(),
            sectors: vec![Sector::default(); slots],
            swap_tested: vec![0; slots],
            swap_star: true,
            symmetric: (0..n).all(|i| (0..i).all(|j| p.dist(i, j) == p.dist(j, i))),
            route_of: vec![usize::MAX; n],
            pos: vec![0; n],
            modified: vec![0; slots],
            tested: vec![0; n],
            moves: 0,
            pen: Penalties {
                load: 1.0,
                warp: 1.0,
            },
            timed: p.has_time_windows(),
            hetero: p.vehicles().is_some(),
            caps: (0..slots).map(|k| p.vehicle_capacity(k)).collect(),
            depots: (0..slots).map(|k| Segment::vehicle_depot(p, k)).collect(),
            scratch: Vec::new(),
            scratch_b: Vec::new(),
        }
    }

    pub fn slots(&self) -> usize {
        self.routes.len()
    }

    /// Improves `routes` (at most [`Self::slots`] of them) in place under penalties `pen`.
    /// Stops early (leaving a valid but not locally optimal solution) at `deadline`, so a
    /// large instance cannot overrun the budget inside one descent.
    pub fn run(
        &mut self,
        routes: &mut Vec<Vec<u32>>,
        pen: Penalties,
        rng: &mut Rng,
        deadline: Instant,
    ) {
        self.load(routes, pen);
        self.moves = 0;
        for c in &self.customers {
            self.tested[*c as usize] = 0;
        }
        let mut order = self.customers.clone();
        rng.shuffle(&mut order);
        for &u in &order {
            let mut nb = std::mem::take(&mut self.neighbours[u as usize]);
            rng.shuffle(&mut nb);
            self.neighbours[u as usize] = nb;
        }

        let mut loop_id = 0u32;
        let mut completed = false;
        while !completed {
            if loop_id > 1 {
                completed = true;
            }
            for (step, &u) in order.iter().enumerate() {
                if step % 16 == 0 && Instant::now() >= deadline {
                    completed = true;
                    break;
                }
                let last_test = self.tested[u as usize];
                self.tested[u as usize] = self.moves;
                let count = self.neighbours[u as usize].len();
                for k in 0..count {
                    let v = self.neighbours[u as usize][k];
                    let (ru, rv) = (self.route_of[u as usize], self.route_of[v as usize]);
                    if loop_id == 0 || self.modified[ru].max(self.modified[rv]) > last_test {
                        if self.try_pair(u, rv, self.pos[v as usize] + 1) {
                            completed = false;
                            continue;
                        }
                        // Also try inserting at the start of v's route.
                        if self.pos[v as usize] == 0 && self.try_pair(u, rv, 0) {
                            completed = false;
                        }
                    }
                }
                if loop_id > 0 && self.try_empty_routes(u) {
                    completed = false;
                }
            }
            if self.swap_star {
                for ra in 0..self.routes.len() {
                    if Instant::now() >= deadline {
                        completed = true;
                        break;
                    }
                    let last_test = self.swap_tested[ra];
                    self.swap_tested[ra] = self.moves;
                    for rb in ra + 1..self.routes.len() {
                        if !self.routes[ra].is_empty()
                            && !self.routes[rb].is_empty()
                            && (loop_id == 0
                                || self.modified[ra].max(self.modified[rb]) > last_test)
                            && self.sectors[ra].overlaps(&self.sectors[rb])
                            && self.try_swap_star(ra, rb)
                        {
                            completed = false;
                        }
                    }
                }
            }
            loop_id += 1;
        }

        routes.clear();
        if self.hetero {
            // Slots are vehicles: keep every slot, empty or not, in place.
            routes.extend(self.routes.iter().cloned());
        } else {
            routes.extend(self.routes.iter().filter(|r| !r.is_empty()).cloned());
        }
    }

    /// Moves `u` into an empty route: the first one, or with a heterogeneous fleet each empty
    /// vehicle in turn until one improves.
    fn try_empty_routes(&mut self, u: u32) -> bool {
        if !self.hetero {
            return match self.routes.iter().position(Vec::is_empty) {
                Some(empty) => self.try_pair(u, empty, 0),
                None => false,
            };
        }
        for r in 0..self.routes.len() {
            if self.routes[r].is_empty() && self.route_of[u as usize] != r && self.try_pair(u, r, 0)
            {
                return true;
            }
        }
        false
    }

    fn load(&mut self, routes: &[Vec<u32>], pen: Penalties) {
        assert!(
            routes.len() <= self.routes.len(),
            "more routes than vehicles"
        );
        self.pen = pen;
        for r in 0..self.routes.len() {
            self.routes[r].clear();
            if let Some(src) = routes.get(r) {
                self.routes[r].extend_from_slice(src);
            }
            self.refresh(r);
            self.modified[r] = 0;
        }
    }

    /// Recomputes the cached data of route `r` after it changed.
    fn refresh(&mut self, r: usize) {
        let p = self.p;
        let route = &self.routes[r];
        let depot = Segment::visit(p, 0);
        let pre = &mut self.prefix[r];
        pre.clear();
        pre.push(self.depots[r]);
        for (k, &c) in route.iter().enumerate() {
            self.route_of[c as usize] = r;
            self.pos[c as usize] = k;
            let s = pre[k].then(p, &Segment::visit(p, c));
            pre.push(s);
        }
        let suf = &mut self.suffix[r];
        suf.clear();
        suf.resize(route.len() + 1, depot);
        for k in (0..route.len()).rev() {
            suf[k] = Segment::visit(p, route[k]).then(p, &suf[k + 1]);
        }
        let full = pre[route.len()].then(p, &self.depots[r]);
        self.cost[r] = self.pen.route_cost(&full, self.caps[r]);
        self.dist[r] = full.dist;
        self.load[r] = full.load;
        self.warp_free[r] = full.warp == 0;
        let mut sector = Sector::default();
        for (k, &c) in route.iter().enumerate() {
            let angle = self.angle[c as usize];
            if k == 0 {
                sector = Sector {
                    start: angle,
                    end: angle,
                };
            } else {
                sector.extend(angle);
            }
        }
        self.sectors[r] = sector;
    }

    fn piece_segment(&self, piece: Piece) -> Segment {
        match piece {
            Piece::Prefix(r, k) => self.prefix[r][k],
            Piece::Visit(c) => Segment::visit(self.p, c),
            Piece::Suffix(r, k) => self.suffix[r][k],
        }
    }

    /// Penalised cost of the route of slot `r` rebuilt from `pieces`.
    fn pieces_cost(&self, r: usize, pieces: &[Piece]) -> f64 {
        let mut seg = self.piece_segment(pieces[0]);
        for &piece in &pieces[1..] {
            seg = seg.then(self.p, &self.piece_segment(piece));
        }
        if self.hetero {
            // The suffix ended at the plain depot; the vehicle's own return limit applies.
            seg = seg.then(self.p, &self.depots[r]);
        }
        self.pen.route_cost(&seg, self.caps[r])
    }

    /// Distance and load of the route made of `pieces` (the slow way, to test the bounds).
    #[cfg(test)]
    fn pieces_distance_load(&self, pieces: &[Piece]) -> (i64, i64) {
        let p = self.p;
        let (mut dist, mut load, mut last) = (0i64, 0i64, u32::MAX);
        for &piece in pieces {
            let (d, l, first, end) = match piece {
                Piece::Prefix(r, k) => {
                    let s = &self.prefix[r][k];
                    (s.dist, s.load, s.first, s.last)
                }
                Piece::Visit(c) => (0, p.node(c as usize).demand, c, c),
                Piece::Suffix(r, k) => {
                    let s = &self.suffix[r][k];
                    (s.dist, s.load, s.first, s.last)
                }
            };
            if last != u32::MAX {
                dist += p.dist(last as usize, first as usize);
            }
            dist += d;
            load += l;
            last = end;
        }
        (dist, load)
    }

    fn materialize(&self, pieces: &[Piece], out: &mut Vec<u32>) {
        out.clear();
        for &piece in pieces {
            match piece {
                Piece::Prefix(r, k) => out.extend_from_slice(&self.routes[r][..k]),
                Piece::Visit(c) => out.push(c),
                Piece::Suffix(r, k) => out.extend_from_slice(&self.routes[r][k..]),
            }
        }
    }

    /// Rebuilds route `ra` as `pa` and route `rb` as `pb`.
    fn apply_inter(&mut self, ra: usize, pa: &[Piece], rb: usize, pb: &[Piece]) {
        let mut a = std::mem::take(&mut self.scratch);
        let mut b = std::mem::take(&mut self.scratch_b);
        self.materialize(pa, &mut a);
        self.materialize(pb, &mut b);
        std::mem::swap(&mut self.routes[ra], &mut a);
        std::mem::swap(&mut self.routes[rb], &mut b);
        self.scratch = a;
        self.scratch_b = b;
        self.commit(&[ra, rb]);
    }

    fn commit(&mut self, changed: &[usize]) {
        self.moves += 1;
        for &r in changed {
            self.refresh(r);
            self.modified[r] = self.moves;
        }
    }

    fn sequence_distance(&self, seq: &[u32]) -> i64 {
        let p = self.p;
        let mut prev = 0usize;
        let mut total = 0;
        for &c in seq {
            total += p.dist(prev, c as usize);
            prev = c as usize;
        }
        total + p.dist(prev, 0)
    }

    /// Penalised cost of `seq` driven by slot `r`'s vehicle.
    fn route_cost_of(&self, r: usize, seq: &[u32]) -> f64 {
        let p = self.p;
        let mut seg = self.depots[r];
        for &c in seq {
            seg = seg.then(p, &Segment::visit(p, c));
        }
        seg = seg.then(p, &self.depots[r]);
        self.pen.route_cost(&seg, self.caps[r])
    }

    /// Tries all moves between customer `u` and the insertion point after the first `kv`
    /// customers of route `rv` (`kv == 0`: right after the depot). Applies the first improving
    /// one.
    fn try_pair(&mut self, u: u32, rv: usize, kv: usize) -> bool {
        let ru = self.route_of[u as usize];
        if ru == rv {
            return self.try_intra(u, kv);
        }
        // Screen every move by distance and load alone (matrix look-ups, no segments); only
        // the survivors are built as piece lists and, with time windows, priced in full.
        let (bounds, count) = self.inter_bounds(u, rv, kv);
        let old = self.cost[ru] + self.cost[rv];
        let (cap_a, cap_b) = (self.caps[ru], self.caps[rv]);
        let mut moves = None;
        for (k, b) in bounds[..count].iter().enumerate() {
            let bound = (b.dist_a + b.dist_b) as f64
                + self.pen.load * ((b.load_a - cap_a).max(0) + (b.load_b - cap_b).max(0)) as f64;
            if bound - old > -EPS {
                continue;
            }
            let (list, n) = *moves.get_or_insert_with(|| self.inter_moves(u, rv, kv));
            debug_assert_eq!(n, count);
            let m = list[k];
            if self.timed && self.pieces_cost(ru, m.a()) + self.pieces_cost(rv, m.b()) - old > -EPS
            {
                continue;
            }
            self.apply_inter(ru, m.a(), rv, m.b());
            return true;
        }
        false
    }

    /// Distance and load of both routes after each move of [`Self::inter_moves`] (same order),
    /// from the arcs the move removes and adds.
    fn inter_bounds(&self, u: u32, rv: usize, kv: usize) -> ([Bound; 7], usize) {
        let p = self.p;
        let d = |a: u32, b: u32| p.dist(a as usize, b as usize);
        let q = |c: u32| p.node(c as usize).demand;
        let ru = self.route_of[u as usize];
        let (route_u, route_v) = (&self.routes[ru], &self.routes[rv]);
        let i = self.pos[u as usize];
        let at = |r: &[u32], k: isize| -> u32 {
            if k < 0 || k as usize >= r.len() {
                0
            } else {
                r[k as usize]
            }
        };
        let (ii, jv) = (i as isize, kv as isize);
        let pu = at(route_u, ii - 1);
        let x = at(route_u, ii + 1);
        let xx = at(route_u, ii + 2);
        let v = at(route_v, jv - 1);
        let pv = at(route_v, jv - 2);
        let y = at(route_v, jv);
        let yy = at(route_v, jv + 1);
        let (du, dv) = (self.dist[ru], self.dist[rv]);
        let (lu, lv) = (self.load[ru], self.load[rv]);
        let mut out = [Bound::default(); 7];
        let mut n = 0;
        let mut push = |dist_a: i64, load_a: i64, dist_b: i64, load_b: i64| {
            out[n] = Bound {
                dist_a,
                load_a,
                dist_b,
                load_b,
            };
            n += 1;
        };
        // M1
        push(
            du + d(pu, x) - d(pu, u) - d(u, x),
            lu - q(u),
            dv + d(v, u) + d(u, y) - d(v, y),
            lv + q(u),
        );
        if x != 0 {
            let removed = du + d(pu, xx) - d(pu, u) - d(u, x) - d(x, xx);
            let qux = q(u) + q(x);
            // M2, M3
            push(
                removed,
                lu - qux,
                dv + d(v, u) + d(u, x) + d(x, y) - d(v, y),
                lv + qux,
            );
            push(
                removed,
                lu - qux,
                dv + d(v, x) + d(x, u) + d(u, y) - d(v, y),
                lv + qux,
            );
        }
        if kv > 0 {
            // M4
            push(
                du + d(pu, v) + d(v, x) - d(pu, u) - d(u, x),
                lu - q(u) + q(v),
                dv + d(pv, u) + d(u, y) - d(pv, v) - d(v, y),
                lv - q(v) + q(u),
            );
            if x != 0 {
                let qux = q(u) + q(x);
                // M5
                push(
                    du + d(pu, v) + d(v, xx) - d(pu, u) - d(u, x) - d(x, xx),
                    lu - qux + q(v),
                    dv + d(pv, u) + d(u, x) + d(x, y) - d(pv, v) - d(v, y),
                    lv - q(v) + qux,
                );
                // M6
                if y != 0 {
                    let qvy = q(v) + q(y);
                    push(
                        du + d(pu, v) + d(v, y) + d(y, xx) - d(pu, u) - d(u, x) - d(x, xx),
                        lu - qux + qvy,
                        dv + d(pv, u) + d(u, x) + d(x, yy) - d(pv, v) - d(v, y) - d(y, yy),
                        lv - qvy + qux,
                    );
                }
            }
        }
        // M8: prefix distances/loads come from the cached prefix segments.
        let (pre_u, pre_v) = (&self.prefix[ru][i + 1], &self.prefix[rv][kv]);
        let (tail_u_dist, tail_v_dist) = (du - pre_u.dist - d(u, x), dv - pre_v.dist - d(v, y));
        push(
            pre_u.dist + d(u, y) + tail_v_dist,
            pre_u.load + lv - pre_v.load,
            pre_v.dist + d(v, x) + tail_u_dist,
            pre_v.load + lu - pre_u.load,
        );
        (out, n)
    }

    /// The inter-route moves between `u` (route `ru`) and the insertion point after `kv`
    /// customers of route `rv != ru`, in the order they are tried (HGS's M1–M6, M8).
    fn inter_moves(&self, u: u32, rv: usize, kv: usize) -> ([InterMove; 7], usize) {
        use Piece::{Prefix as P, Suffix as S, Visit as N};
        let ru = self.route_of[u as usize];
        let i = self.pos[u as usize];
        let mu = self.routes[ru].len();
        let mv = self.routes[rv].len();
        let x = (i + 1 < mu).then(|| self.routes[ru][i + 1]);
        let v = (kv > 0).then(|| self.routes[rv][kv - 1]);
        let y = (kv < mv).then(|| self.routes[rv][kv]);
        let mut out = [InterMove::default(); 7];
        let mut n = 0;
        let mut push = |a: &[Piece], b: &[Piece]| {
            out[n] = InterMove::new(a, b);
            n += 1;
        };
        // M1: relocate u after v.
        push(&[P(ru, i), S(ru, i + 1)], &[P(rv, kv), N(u), S(rv, kv)]);
        if let Some(x) = x {
            // M2 / M3: relocate (u, x) after v, as is or reversed.
            push(
                &[P(ru, i), S(ru, i + 2)],
                &[P(rv, kv), N(u), N(x), S(rv, kv)],
            );
            push(
                &[P(ru, i), S(ru, i + 2)],
                &[P(rv, kv), N(x), N(u), S(rv, kv)],
            );
        }
        if let Some(v) = v {
            let j = kv - 1;
            // M4: swap u and v.
            push(
                &[P(ru, i), N(v), S(ru, i + 1)],
                &[P(rv, j), N(u), S(rv, j + 1)],
            );
            if let Some(x) = x {
                // M5: swap (u, x) and v.
                push(
                    &[P(ru, i), N(v), S(ru, i + 2)],
                    &[P(rv, j), N(u), N(x), S(rv, j + 1)],
                );
                // M6: swap (u, x) and (v, y).
                if let Some(y) = y {
                    push(
                        &[P(ru, i), N(v), N(y), S(ru, i + 2)],
                        &[P(rv, j), N(u), N(x), S(rv, j + 2)],
                    );
                }
            }
        }
        // M8: 2-opt* — exchange the tails after u and after v.
        push(&[P(ru, i + 1), S(rv, kv)], &[P(rv, kv), S(ru, i + 1)]);
        (out, n)
    }

    /// SWAP* (Vidal 2022): exchange a customer of `ra` with one of `rb`, each re-inserted at
    /// its best position in the other route rather than in the other's place. Candidates are
    /// screened by distance and load using the three cheapest insertion positions per
    /// customer; the best one is priced exactly (time windows included) and applied if it
    /// improves.
    fn try_swap_star(&mut self, ra: usize, rb: usize) -> bool {
        let p = self.p;
        let d = |a: u32, b: u32| p.dist(a as usize, b as usize);
        let q = |c: u32| p.node(c as usize).demand;
        let (a, b) = (&self.routes[ra], &self.routes[rb]);
        let at = |r: &[u32], k: isize| -> u32 {
            if k < 0 || k as usize >= r.len() {
                0
            } else {
                r[k as usize]
            }
        };
        let removal = |r: &[u32], k: usize| {
            let (pc, c, nc) = (at(r, k as isize - 1), r[k], at(r, k as isize + 1));
            d(pc, nc) - d(pc, c) - d(c, nc)
        };
        // Three cheapest insertion positions (cost, k: between r[k-1] and r[k]).
        let top3 = |c: u32, r: &[u32]| -> [(i64, usize); 3] {
            let mut best = [(i64::MAX, usize::MAX); 3];
            for k in 0..=r.len() {
                let (prev, next) = (at(r, k as isize - 1), at(r, k as isize));
                let cost = d(prev, c) + d(c, next) - d(prev, next);
                if cost < best[2].0 {
                    best[2] = (cost, k);
                    if best[2].0 < best[1].0 {
                        best.swap(1, 2);
                        if best[1].0 < best[0].0 {
                            best.swap(0, 1);
                        }
                    }
                }
            }
            best
        };
        let ins_a: Vec<[(i64, usize); 3]> = a.iter().map(|&u| top3(u, b)).collect();
        let ins_b: Vec<[(i64, usize); 3]> = b.iter().map(|&v| top3(v, a)).collect();
        let rem_a: Vec<i64> = (0..a.len()).map(|k| removal(a, k)).collect();
        let rem_b: Vec<i64> = (0..b.len()).map(|k| removal(b, k)).collect();
        let (cap_a, cap_b) = (self.caps[ra], self.caps[rb]);
        let excess_a = |l: i64| (l - cap_a).max(0) as f64;
        let excess_b = |l: i64| (l - cap_b).max(0) as f64;
        let (load_a, load_b) = (self.load[ra], self.load[rb]);
        let pen_now = excess_a(load_a) + excess_b(load_b);
        // Cheapest insertion of `c` into `r` once r[gone] is removed.
        let best_insert =
            |c: u32, r: &[u32], gone: usize, top: &[(i64, usize); 3]| -> (i64, usize) {
                let (pg, ng) = (at(r, gone as isize - 1), at(r, gone as isize + 1));
                // In the removed customer's place: between its neighbours.
                let mut best = (d(pg, c) + d(c, ng) - d(pg, ng), gone);
                for &(cost, k) in top {
                    if k != usize::MAX && k != gone && k != gone + 1 && cost < best.0 {
                        best = (cost, k);
                    }
                }
                best
            };
        let mut best: Option<(f64, usize, usize, usize, usize)> = None;
        for (iu, &u) in a.iter().enumerate() {
            for (iv, &v) in b.iter().enumerate() {
                let pen_delta = self.pen.load
                    * (excess_a(load_a - q(u) + q(v)) + excess_b(load_b - q(v) + q(u)) - pen_now);
                if pen_delta + (rem_a[iu] + rem_b[iv]) as f64 >= 0.0 {
                    continue;
                }
                let (cost_u, ku) = best_insert(u, b, iv, &ins_a[iu]);
                let (cost_v, kv) = best_insert(v, a, iu, &ins_b[iv]);
                let total = pen_delta + (rem_a[iu] + rem_b[iv] + cost_u + cost_v) as f64;
                if best.is_none_or(|(t, ..)| total < t) {
                    best = Some((total, iu, iv, ku, kv));
                }
            }
        }
        let Some((total, iu, iv, ku, kv)) = best else {
            return false;
        };
        if total > -EPS && !(self.timed && !(self.warp_free[ra] && self.warp_free[rb])) {
            return false;
        }
        // Build both routes; position k == removed index means "in its place".
        let rebuild = |r: &[u32], gone: usize, c: u32, k: usize, out: &mut Vec<u32>| {
            out.clear();
            for (idx, &x) in r.iter().enumerate() {
                if idx == k {
                    out.push(c);
                }
                if idx != gone {
                    out.push(x);
                }
            }
            if k == r.len() {
                out.push(c);
            }
        };
        let (mut new_a, mut new_b) = (
            std::mem::take(&mut self.scratch),
            std::mem::take(&mut self.scratch_b),
        );
        rebuild(a, iu, b[iv], kv, &mut new_a);
        rebuild(b, iv, a[iu], ku, &mut new_b);
        let delta = self.route_cost_of(ra, &new_a) + self.route_cost_of(rb, &new_b)
            - self.cost[ra]
            - self.cost[rb];
        if delta > -EPS {
            self.scratch = new_a;
            self.scratch_b = new_b;
            return false;
        }
        std::mem::swap(&mut self.routes[ra], &mut new_a);
        std::mem::swap(&mut self.routes[rb], &mut new_b);
        self.scratch = new_a;
        self.scratch_b = new_b;
        self.commit(&[ra, rb]);
        true
    }

    /// Intra-route versions of the same moves plus 2-opt (reversal), priced by re-folding.
    fn try_intra(&mut self, u: u32, kv: usize) -> bool {
        let r = self.route_of[u as usize];
        let i = self.pos[u as usize];
        // The load is unchanged; without time warp now, the distance alone bounds the gain.
        let distance_bounds = !self.timed || self.warp_free[r];
        let mut candidate = std::mem::take(&mut self.scratch);
        let mut found = false;
        for kind in 0..7u8 {
            if distance_bounds
                && let Some(delta) = self.intra_distance_delta(r, i, kv, kind)
                && delta >= 0
            {
                continue;
            }
            if !self.intra_candidate(r, u, kv, kind, &mut candidate) {
                continue;
            }
            if distance_bounds && self.sequence_distance(&candidate) >= self.dist[r] {
                continue;
            }
            if self.route_cost_of(r, &candidate) < self.cost[r] - EPS {
                found = true;
                break;
            }
        }
        if found {
            std::mem::swap(&mut self.routes[r], &mut candidate);
            self.scratch = candidate;
            self.commit(&[r]);
        } else {
            self.scratch = candidate;
        }
        found
    }

    /// Writes into `out` route `r` after intra-route move `kind` (0: relocate u after v,
    /// 1/2: relocate (u, x) / (x, u) after v, 3: swap u and v, 4: swap (u, x) and v,
    /// 5: swap (u, x) and (v, y), 6: 2-opt); false if the move does not apply.
    fn intra_candidate(&self, r: usize, u: u32, kv: usize, kind: u8, out: &mut Vec<u32>) -> bool {
        let i = self.pos[u as usize];
        let route = &self.routes[r];
        let m = route.len();
        let x = (i + 1 < m).then(|| route[i + 1]);
        let v = (kv > 0).then(|| route[kv - 1]);
        let y = (kv < m).then(|| route[kv]);
        let candidate = out;
        match kind {
            0 => v != Some(u) && kv != i && intra_relocate(route, &[u], v, candidate),
            1 => {
                x.is_some()
                    && v != Some(u)
                    && v != x
                    && kv != i
                    && intra_relocate(route, &[u, x.unwrap()], v, candidate)
            }
            2 => {
                x.is_some()
                    && v != Some(u)
                    && v != x
                    && intra_relocate(route, &[x.unwrap(), u], v, candidate)
            }
            3 => v.is_some() && v != Some(u) && intra_swap(route, &[u], &[v.unwrap()], candidate),
            4 => {
                x.is_some()
                    && v.is_some()
                    && v != Some(u)
                    && v != x
                    && intra_swap(route, &[u, x.unwrap()], &[v.unwrap()], candidate)
            }
            5 => {
                x.is_some()
                    && v.is_some()
                    && y.is_some()
                    && v != Some(u)
                    && v != x
                    && y != Some(u)
                    && intra_swap(
                        route,
                        &[u, x.unwrap()],
                        &[v.unwrap(), y.unwrap()],
                        candidate,
                    )
            }
            _ => {
                // 2-opt: (u, x), (v, y) -> (u, v), (x, y) by reversing x..=v.
                let j = kv.wrapping_sub(1);
                if v.is_some() && j > i + 1 {
                    candidate.clear();
                    candidate.extend_from_slice(route);
                    candidate[i + 1..=j].reverse();
                    true
                } else {
                    false
                }
            }
        }
    }

    /// The distance change of intra-route move `kind` in O(1), for the moves where that is
    /// simple (relocate, swap, and 2-opt on a symmetric matrix); `None` for the others.
    fn intra_distance_delta(&self, r: usize, i: usize, kv: usize, kind: u8) -> Option<i64> {
        let p = self.p;
        let d = |a: u32, b: u32| p.dist(a as usize, b as usize);
        let route = &self.routes[r];
        let at = |k: isize| -> u32 {
            if k < 0 || k as usize >= route.len() {
                0
            } else {
                route[k as usize]
            }
        };
        let (ii, jv) = (i as isize, kv as isize);
        let (pu, u, x, xx) = (at(ii - 1), route[i], at(ii + 1), at(ii + 2));
        let (v, y) = (at(jv - 1), at(jv));
        match kind {
            0 if kv != i && kv != i + 1 => {
                Some(d(pu, x) - d(pu, u) - d(u, x) + d(v, u) + d(u, y) - d(v, y))
            }
            3 if kv > 0 && kv != i + 1 => {
                let pv = at(jv - 2);
                Some(if kv == i + 2 {
                    // v is u's successor.
                    d(pu, x) + d(x, u) + d(u, xx) - d(pu, u) - d(u, x) - d(x, xx)
                } else if kv == i {
                    // v is u's predecessor.
                    d(pv, u) + d(u, v) + d(v, x) - d(pv, v) - d(v, u) - d(u, x)
                } else {
                    d(pu, v) + d(v, x) - d(pu, u) - d(u, x) + d(pv, u) + d(u, y)
                        - d(pv, v)
                        - d(v, y)
                })
            }
            1 if x != 0 && kv != i && kv != i + 1 && kv != i + 2 => {
                Some(d(pu, xx) - d(pu, u) - d(x, xx) + d(v, u) + d(x, y) - d(v, y))
            }
            2 if x != 0 && kv != i + 1 && kv != i + 2 => Some(if kv == i {
                // In place: (u, x) becomes (x, u).
                d(pu, x) + d(x, u) + d(u, xx) - d(pu, u) - d(u, x) - d(x, xx)
            } else {
                d(pu, xx) - d(pu, u) - d(u, x) - d(x, xx) + d(v, x) + d(x, u) + d(u, y) - d(v, y)
            }),
            // Swaps of (u, x) with v or (v, y), when the blocks are not adjacent.
            4 if x != 0 && kv > 0 && (kv < i || kv >= i + 4) => {
                let pv = at(jv - 2);
                Some(
                    d(pu, v) + d(v, xx) + d(pv, u) + d(x, y)
                        - d(pu, u)
                        - d(x, xx)
                        - d(pv, v)
                        - d(v, y),
                )
            }
            5 if x != 0 && kv > 0 && y != 0 && (kv + 2 <= i || kv >= i + 4) => {
                let (pv, yy) = (at(jv - 2), at(jv + 1));
                Some(
                    d(pu, v) + d(y, xx) + d(pv, u) + d(x, yy)
                        - d(pu, u)
                        - d(x, xx)
                        - d(pv, v)
                        - d(y, yy),
                )
            }
            6 if self.symmetric && kv > i + 2 => Some(d(u, v) + d(x, y) - d(u, x) - d(v, y)),
            _ => None,
        }
    }
}

/// `route` with `block` (consecutive in `route`) moved to just after `anchor` (`None`: the
/// front). The block may be given reversed. Returns false if nothing would change.
fn intra_relocate(route: &[u32], block: &[u32], anchor: Option<u32>, out: &mut Vec<u32>) -> bool {
    out.clear();
    if anchor.is_none() {
        out.extend_from_slice(block);
    }
    for &c in route {
        if block.contains(&c) {
            continue;
        }
        out.push(c);
        if Some(c) == anchor {
            out.extend_from_slice(block);
        }
    }
    true
}

/// `route` with the disjoint consecutive blocks `a` and `b` exchanged.
fn intra_swap(route: &[u32], a: &[u32], b: &[u32], out: &mut Vec<u32>) -> bool {
    out.clear();
    let mut k = 0;
    while k < route.len() {
        let c = route[k];
        if c == a[0] {
            out.extend_from_slice(b);
            k += a.len();
        } else if c == b[0] {
            out.extend_from_slice(a);
            k += b.len();
        } else {
            out.push(c);
            k += 1;
        }
    }
    out.len() == route.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{parse_solomon, parse_vrplib};
    use crate::search::granular_neighbours;

    fn far_future() -> Instant {
        Instant::now() + std::time::Duration::from_secs(3600)
    }

    fn random_routes(p: &Problem, slots: usize, rng: &mut Rng) -> Vec<Vec<u32>> {
        let mut customers: Vec<u32> = (1..=p.num_customers() as u32).collect();
        rng.shuffle(&mut customers);
        let mut routes = vec![Vec::new(); slots];
        for c in customers {
            // Leave the last slot empty so moves into an empty route are covered.
            routes[rng.below(slots - 1)].push(c);
        }
        routes
    }

    /// Every inter-route move is priced (O(1), from cached segments) exactly as re-folding
    /// the routes it produces, and the distance/load bound never exceeds that price.
    fn check_pricing(p: &Problem, pen: Penalties, seed: u64) {
        let customers: Vec<u32> = (1..=p.num_customers() as u32).collect();
        let neighbours = granular_neighbours(p, &customers, 10);
        let mut ls = LocalSearch::new(p, customers.clone(), neighbours, 6);
        let mut rng = Rng::new(seed);
        let mut checked = 0;
        for _ in 0..5 {
            let routes = random_routes(p, 6, &mut rng);
            ls.load(&routes, pen);
            for &u in &customers {
                let ru = ls.route_of[u as usize];
                for rv in (0..6).filter(|&rv| rv != ru) {
                    for kv in 0..=ls.routes[rv].len() {
                        let (moves, n) = ls.inter_moves(u, rv, kv);
                        let (bounds, nb) = ls.inter_bounds(u, rv, kv);
                        assert_eq!(n, nb);
                        for (m, bd) in moves[..n].iter().zip(&bounds) {
                            let priced = ls.pieces_cost(ru, m.a()) + ls.pieces_cost(rv, m.b());
                            let (mut a, mut b) = (Vec::new(), Vec::new());
                            ls.materialize(m.a(), &mut a);
                            ls.materialize(m.b(), &mut b);
                            let folded = ls.route_cost_of(ru, &a) + ls.route_cost_of(rv, &b);
                            assert!(
                                (priced - folded).abs() < 1e-6,
                                "{m:?}: {priced} vs {folded}"
                            );
                            let (da, la) = ls.pieces_distance_load(m.a());
                            let (db, lb) = ls.pieces_distance_load(m.b());
                            let (ca, cb) = (p.vehicle_capacity(ru), p.vehicle_capacity(rv));
                            let bound = (da + db) as f64
                                + pen.load * ((la - ca).max(0) + (lb - cb).max(0)) as f64;
                            assert!(bound <= folded + 1e-6);
                            let slow = Bound {
                                dist_a: da,
                                load_a: la,
                                dist_b: db,
                                load_b: lb,
                            };
                            assert_eq!(*bd, slow, "{m:?}");
                            // Each customer stays exactly once across the two routes.
                            let mut before: Vec<u32> = ls.routes[ru]
                                .iter()
                                .chain(&ls.routes[rv])
                                .copied()
                                .collect();
                            let mut after: Vec<u32> = a.iter().chain(&b).copied().collect();
                            before.sort_unstable();
                            after.sort_unstable();
                            assert_eq!(before, after);
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn inter_route_move_prices_match_full_evaluation_with_time_windows() {
        let p = parse_solomon(include_str!("../../tests/fixtures/R101-head.txt")).unwrap();
        check_pricing(
            &p,
            Penalties {
                load: 3.0,
                warp: 1.5,
            },
            1,
        );
    }

    #[test]
    fn inter_route_move_prices_match_full_evaluation_with_capacity_only() {
        let p = parse_vrplib(include_str!("../../tests/fixtures/A-n32-k5.vrp")).unwrap();
        check_pricing(
            &p,
            Penalties {
                load: 7.0,
                warp: 1.0,
            },
            2,
        );
    }

    #[test]
    fn inter_route_move_prices_match_full_evaluation_with_a_heterogeneous_fleet() {
        // Six vehicles with their own capacities and shifts: moves between routes of different
        // vehicles (2-opt* hands a suffix to another vehicle) must be priced with the
        // receiving vehicle's capacity and return limit.
        let p = parse_solomon(include_str!("../../tests/fixtures/R101-head.txt")).unwrap();
        let due = p.node(0).due;
        let vehicles = (0..6)
            .map(|k| crate::Vehicle {
                capacity: [200, 60, 120, 30, 90, 150][k],
                start: [0, 0, 50, 0, 100, 20][k],
                end: [due, due / 2, due, due / 3, due, due * 3 / 4][k],
            })
            .collect();
        let p = p.with_vehicles(vehicles).unwrap();
        check_pricing(
            &p,
            Penalties {
                load: 3.0,
                warp: 1.5,
            },
            4,
        );
        check_descent(&p);
    }

    #[test]
    fn intra_route_distance_shortcuts_match_the_rebuilt_route() {
        let timed = parse_solomon(include_str!("../../tests/fixtures/R101-head.txt")).unwrap();
        let untimed = parse_vrplib(include_str!("../../tests/fixtures/A-n32-k5.vrp")).unwrap();
        for p in [timed, untimed] {
            let customers: Vec<u32> = (1..=p.num_customers() as u32).collect();
            let neighbours = granular_neighbours(&p, &customers, 10);
            let mut ls = LocalSearch::new(&p, customers.clone(), neighbours, 4);
            let mut rng = Rng::new(5);
            let mut checked = 0;
            for _ in 0..5 {
                ls.load(
                    &random_routes(&p, 4, &mut rng),
                    Penalties {
                        load: 1.0,
                        warp: 1.0,
                    },
                );
                for &u in &customers {
                    let r = ls.route_of[u as usize];
                    for kv in 0..=ls.routes[r].len() {
                        for kind in 0..7 {
                            let mut out = Vec::new();
                            let ok = ls.intra_candidate(r, u, kv, kind, &mut out);
                            let fast = ls.intra_distance_delta(r, ls.pos[u as usize], kv, kind);
                            if let (true, Some(fast)) = (ok, fast) {
                                let slow = ls.sequence_distance(&out) - ls.dist[r];
                                assert_eq!(fast, slow, "kind {kind}, u {u}, kv {kv}");
                                checked += 1;
                            }
                            if ok {
                                let mut sorted = out.clone();
                                sorted.sort_unstable();
                                let mut before = ls.routes[r].clone();
                                before.sort_unstable();
                                assert_eq!(
                                    sorted, before,
                                    "kind {kind} lost or duplicated a visit"
                                );
                            }
                        }
                    }
                }
            }
            assert!(checked > 500, "{checked}");
        }
    }

    #[test]
    fn local_search_keeps_every_customer_once_and_reports_true_costs() {
        let timed = parse_solomon(include_str!("../../tests/fixtures/R101-head.txt")).unwrap();
        let untimed = parse_vrplib(include_str!("../../tests/fixtures/A-n32-k5.vrp")).unwrap();
        for p in [timed, untimed] {
            check_descent(&p);
        }
    }

    fn check_descent(p: &Problem) {
        let customers: Vec<u32> = (1..=p.num_customers() as u32).collect();
        let neighbours = granular_neighbours(p, &customers, 10);
        let slots = p.vehicles().map_or(12, <[_]>::len);
        let mut ls = LocalSearch::new(p, customers.clone(), neighbours, slots);
        let mut rng = Rng::new(3);
        let pen = Penalties {
            load: 10.0,
            warp: 10.0,
        };
        let mut routes = random_routes(p, slots, &mut rng);
        // Price the start under the same penalties as the result.
        ls.load(&routes, pen);
        let before: f64 = routes
            .iter()
            .enumerate()
            .map(|(k, r)| ls.route_cost_of(k, r))
            .sum();
        ls.run(&mut routes, pen, &mut rng, far_future());
        let after: f64 = if p.vehicles().is_some() {
            routes
                .iter()
                .enumerate()
                .map(|(k, r)| ls.route_cost_of(k, r))
                .sum()
        } else {
            // Homogeneous: empty routes are dropped, and any slot prices a route alike.
            routes.iter().map(|r| ls.route_cost_of(0, r)).sum()
        };
        assert!(
            after < before,
            "local search must improve a random solution"
        );
        let cached: f64 = ls.cost.iter().sum();
        assert!((cached - after).abs() < 1e-6, "cached route costs drifted");
        let mut seen: Vec<u32> = routes.concat();
        seen.sort_unstable();
        assert_eq!(seen, customers);
    }
}
