//! What a simulated camera sees: a synthetic bank-branch interior drawn at any size — wall and
//! floor gradients, a tiled floor, a counter with monitors, a door, two windows with blinds, a
//! cabinet, signs with text-like marks, a clock — so that a client's picture checks (is it
//! uniform, dark, out of focus?) have a real scene to judge. Fine detail comes at several
//! scales: blinds and wood grain (a few pixels), text strokes and tile joints (one or two),
//! plaster and terrazzo grain (every pixel), and sharp edges everywhere.
//!
//! The scene is drawn in a 640×360 reference frame and scaled, so every size shows the same
//! room; grain stays one pixel fine at every size, as a sensor's would. Each frame adds its own
//! sensor noise (σ ≈ 3 on 0–255), so consecutive frames differ. The picture faults change what
//! the lens sees: [`Scene::Covered`] (tape over the lens), [`Scene::Dark`] (the lights out),
//! [`Scene::Blurred`] (defocused: the scene blurred before the noise is added).

/// What a camera's picture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scene {
    /// The branch interior.
    Normal,
    /// Tape over the lens: a nearly uniform dark grey.
    Covered,
    /// The same room at about 5 % of its brightness, with the same sensor noise.
    Dark,
    /// The same room strongly defocused (three box blurs of radius 6 px at 360 lines, about a
    /// Gaussian of σ 6.5 px), with the same sensor noise added after the blur.
    Blurred,
}

/// The JPEG a camera serves as snapshot number `frame` of `scene` at `width × height` (each
/// side [`MIN_PICTURE_SIDE`](super::MIN_PICTURE_SIDE)–[`MAX_PICTURE_SIDE`](super::MAX_PICTURE_SIDE)),
/// unpadded: the same bytes, from the same cache, as the snapshot URL's — for benchmarks and
/// tests of picture checks that want the simulator's pictures without a camera. Empty for a
/// size outside the limits.
pub fn scene_frame(scene: Scene, width: u16, height: u16, frame: u64) -> Vec<u8> {
    let side = super::jpeg::MIN_SIDE..=super::jpeg::MAX_SIDE;
    if !side.contains(&width) || !side.contains(&height) {
        return Vec::new();
    }
    match super::jpeg::frames_blocking(scene, width, height) {
        Ok(frames) => frames.serve(frame, 0),
        Err(_) => Vec::new(),
    }
}

/// `n` distinct pictures of `scene` (fresh noise each, not the served cache's eight), as JPEG
/// bytes handed to `each` one by one; nothing when the size is out of range.
pub fn fresh_frames(scene: Scene, width: u16, height: u16, n: usize, each: impl FnMut(&[u8])) {
    let side = super::jpeg::MIN_SIDE..=super::jpeg::MAX_SIDE;
    if side.contains(&width) && side.contains(&height) {
        super::jpeg::fresh(scene, width, height, n, each);
    }
}

/// Sensor noise of a lit picture, on 0–255 (luma; chroma has half).
const NOISE_SIGMA: f32 = 3.0;
/// How bright [`Scene::Dark`] is, as a share of the lit room.
const DARK_GAIN: f32 = 0.05;
/// The box radius of [`Scene::Blurred`] at 360 lines (scaled with the height).
const BLUR_RADIUS: f32 = 6.0;
/// The reference frame the scene is drawn in.
const REF_W: f32 = 640.0;
const REF_H: f32 = 360.0;

/// Y, Cb, Cr on 0–255.
#[derive(Debug, Clone, Copy)]
struct Ycc(f32, f32, f32);

const NEUTRAL: f32 = 128.0;

impl Ycc {
    fn grey(y: f32) -> Ycc {
        Ycc(y, NEUTRAL, NEUTRAL)
    }

    fn lighter(self, dy: f32) -> Ycc {
        Ycc(self.0 + dy, self.1, self.2)
    }
}

/// Three full-resolution planes (chroma is subsampled by the encoder, not here).
struct Planes {
    w: usize,
    h: usize,
    y: Vec<f32>,
    cb: Vec<f32>,
    cr: Vec<f32>,
}

/// A deterministic hash of a position, for grain and text that are the same on every run.
fn hash(a: u32, b: u32, salt: u32) -> u32 {
    let mut h =
        a.wrapping_mul(0x9E37_79B1) ^ b.wrapping_mul(0x85EB_CA77).rotate_left(13) ^ salt.wrapping_mul(0xC2B2_AE3D);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A_2D39);
    h ^= h >> 15;
    h
}

/// A hash as a number in [-1, 1).
fn signed(h: u32) -> f32 {
    (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
}

/// SplitMix64: the per-frame noise.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Two samples of about a standard normal: each the sum of four uniform bytes (Irwin–Hall),
    /// centred and scaled.
    fn normals(&mut self) -> [f32; 2] {
        const MEAN: f32 = 4.0 * 255.0 / 2.0;
        // sqrt(4 × (256² − 1) / 12)
        const SD: f32 = 147.801_22;
        let b = self.next().to_le_bytes();
        let sum = |q: &[u8]| q.iter().map(|&v| f32::from(v)).sum::<f32>();
        [(sum(&b[..4]) - MEAN) / SD, (sum(&b[4..]) - MEAN) / SD]
    }
}

/// A canvas in the reference frame: shapes are given in reference pixels, patterns in device
/// pixels (scaled by `s`).
struct Canvas {
    p: Planes,
    sx: f32,
    sy: f32,
    /// Pattern scale: device pixels per reference pixel, vertically.
    s: f32,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Canvas {
        let n = w * h;
        Canvas {
            p: Planes { w, h, y: vec![0.0; n], cb: vec![NEUTRAL; n], cr: vec![NEUTRAL; n] },
            sx: w as f32 / REF_W,
            sy: h as f32 / REF_H,
            s: h as f32 / REF_H,
        }
    }

    fn col(&self, x: f32) -> usize {
        ((x * self.sx).round().max(0.0) as usize).min(self.p.w)
    }

    fn row(&self, y: f32) -> usize {
        ((y * self.sy).round().max(0.0) as usize).min(self.p.h)
    }

    /// A pattern length of `r` reference pixels in device pixels, at least 1.
    fn len(&self, r: f32) -> usize {
        (r * self.s).round().max(1.0) as usize
    }

    fn set(&mut self, i: usize, c: Ycc) {
        self.p.y[i] = c.0;
        self.p.cb[i] = c.1;
        self.p.cr[i] = c.2;
    }

    /// Paints the rectangle [x0, x1) × [y0, y1) (reference pixels) with `shade(dx, dy, i)`:
    /// device pixels from the rectangle's corner, and the pixel's index. `None` leaves a pixel.
    fn paint(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, mut shade: impl FnMut(usize, usize, usize) -> Option<Ycc>) {
        let (c0, c1, r0, r1) = (self.col(x0), self.col(x1), self.row(y0), self.row(y1));
        for y in r0..r1 {
            for x in c0..c1 {
                let i = y * self.p.w + x;
                if let Some(c) = shade(x - c0, y - r0, i) {
                    self.set(i, c);
                }
            }
        }
    }

    fn fill(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, c: Ycc) {
        self.paint(x0, y0, x1, y1, |_, _, _| Some(c));
    }

    /// A frame of thickness `t` inside the rectangle.
    fn border(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, t: f32, c: Ycc) {
        self.fill(x0, y0, x1, y0 + t, c);
        self.fill(x0, y1 - t, x1, y1, c);
        self.fill(x0, y0, x0 + t, y1, c);
        self.fill(x1 - t, y0, x1, y1, c);
    }

    /// Pixels whose distance to the segment is at most `half` (reference pixels).
    fn line(&mut self, a: (f32, f32), b: (f32, f32), half: f32, c: Ycc) {
        let (sx, sy) = (self.sx, self.sy);
        let (ax, ay, bx, by) = (a.0 * sx, a.1 * sy, b.0 * sx, b.1 * sy);
        let half = half * self.s;
        let (dx, dy) = (bx - ax, by - ay);
        let len2 = (dx * dx + dy * dy).max(1e-6);
        let x0 = a.0.min(b.0) - 2.0 * half / sx - 1.0;
        let y0 = a.1.min(b.1) - 2.0 * half / sy - 1.0;
        let x1 = a.0.max(b.0) + 2.0 * half / sx + 1.0;
        let y1 = a.1.max(b.1) + 2.0 * half / sy + 1.0;
        let (c0, r0) = (self.col(x0), self.row(y0));
        self.paint(x0, y0, x1, y1, |px, py, _| {
            let (x, y) = ((c0 + px) as f32 + 0.5, (r0 + py) as f32 + 0.5);
            let t = (((x - ax) * dx + (y - ay) * dy) / len2).clamp(0.0, 1.0);
            let (ex, ey) = (ax + t * dx - x, ay + t * dy - y);
            (ex * ex + ey * ey <= half * half).then_some(c)
        });
    }

    /// A disc of radius `r` (reference pixels) around `(cx, cy)`, coloured by the distance from
    /// the centre as a share of the radius.
    fn disc(&mut self, cx: f32, cy: f32, r: f32, colour: impl Fn(f32) -> Ycc) {
        let (ccx, ccy, rr) = (cx * self.sx, cy * self.sy, r * self.s);
        let (c0, r0) = (self.col(cx - r - 1.0), self.row(cy - r - 1.0));
        self.paint(cx - r - 1.0, cy - r - 1.0, cx + r + 1.0, cy + r + 1.0, |px, py, _| {
            let (x, y) = ((c0 + px) as f32 + 0.5 - ccx, (r0 + py) as f32 + 0.5 - ccy);
            let d = (x * x + y * y).sqrt() / rr;
            (d <= 1.0).then(|| colour(d))
        });
    }

    /// Rows of text-like marks: glyphs of 5 × 7 dots of `dot` reference pixels, a glyph every
    /// `6 × dot`, a line every `9 × dot`, now and then a space.
    fn text(&mut self, (x0, y0): (f32, f32), (cols, lines): (u32, u32), dot: f32, ink: Ycc, salt: u32) {
        for line in 0..lines {
            for col in 0..cols {
                let cell = hash(col, line, salt);
                if cell.is_multiple_of(7) {
                    continue; // a space between words
                }
                let gx = x0 + col as f32 * 6.0 * dot;
                let gy = y0 + line as f32 * 9.0 * dot;
                // A stem on the left or right half of most glyphs, and scattered dots: text-like.
                let stem = (cell >> 3) % 5;
                for by in 0..7u32 {
                    for bx in 0..5u32 {
                        let on = (stem < 3 && bx == stem * 2) || hash(bx + by * 5, cell, salt) % 5 < 2;
                        if on {
                            let (x, y) = (gx + bx as f32 * dot, gy + by as f32 * dot);
                            self.fill(x, y, x + dot, y + dot, ink);
                        }
                    }
                }
            }
        }
    }
}

/// The lit branch interior, without sensor noise.
fn interior(w: usize, h: usize) -> Planes {
    let mut c = Canvas::new(w, h);
    let wall = Ycc(0.0, 118.0, 137.0);
    let floor_top = 224.0;

    // Wall: lit from the ceiling, darker towards the floor and the sides; plaster grain.
    let (cw, ch) = (w as f32, c.row(floor_top) as f32);
    c.paint(0.0, 0.0, REF_W, floor_top, |x, y, _| {
        let u = (x as f32 / cw - 0.5) * 2.0;
        let v = y as f32 / ch;
        let grain = 4.0 * signed(hash(x as u32, y as u32, 1));
        Some(wall.lighter(172.0 - 22.0 * v - 16.0 * u * u + grain))
    });
    // Ceiling band with light panels.
    c.fill(0.0, 0.0, REF_W, 16.0, Ycc(200.0, 126.0, 130.0));
    for (x0, x1) in [(50.0, 170.0), (250.0, 390.0), (470.0, 590.0)] {
        c.fill(x0, 3.0, x1, 12.0, Ycc::grey(250.0));
        c.border(x0, 3.0, x1, 12.0, 1.0, Ycc::grey(215.0));
    }

    // Floor: tiles in a checker of two shades, dark joints, terrazzo grain, darker near the
    // camera.
    let tile_w = c.len(36.0);
    let tile_h = c.len(18.0);
    let joint = c.len(1.5);
    let (fy0, fh) = (c.row(floor_top), (h - c.row(floor_top)) as f32);
    c.paint(0.0, floor_top, REF_W, REF_H, |x, y, _| {
        let (tx, ty) = (x / tile_w, y / tile_h);
        let shade = if (tx + ty) % 2 == 0 { 134.0 } else { 112.0 };
        let depth = -18.0 * (y as f32 / fh);
        let speck = hash(x as u32, (y + fy0) as u32, 2);
        let grain = 6.0 * signed(speck) + if speck.is_multiple_of(61) { -40.0 } else { 0.0 };
        let base = if x % tile_w < joint || y % tile_h < joint { 72.0 } else { shade + grain };
        Some(Ycc(base + depth, 124.0, 132.0))
    });
    c.fill(0.0, floor_top - 6.0, REF_W, floor_top, Ycc(62.0, 124.0, 134.0)); // skirting

    // Door on the left: frame, grey-blue leaf, a striped glass panel, a handle.
    c.fill(26.0, 50.0, 114.0, floor_top, Ycc(92.0, 134.0, 121.0));
    c.border(26.0, 50.0, 114.0, floor_top, 5.0, Ycc(46.0, 122.0, 134.0));
    let stripe = c.len(3.0);
    c.paint(46.0, 68.0, 94.0, 132.0, |x, _, _| {
        Some(Ycc::grey(if (x / stripe).is_multiple_of(2) { 178.0 } else { 150.0 }))
    });
    c.border(46.0, 68.0, 94.0, 132.0, 2.0, Ycc(46.0, 122.0, 134.0));
    c.fill(98.0, 138.0, 106.0, 145.0, Ycc::grey(218.0));

    // Notice board with small print.
    c.fill(126.0, 38.0, 182.0, 112.0, Ycc(214.0, 126.0, 131.0));
    c.border(126.0, 38.0, 182.0, 112.0, 2.0, Ycc(70.0, 110.0, 146.0));
    c.text((132.0, 46.0), (10, 9), 0.75, Ycc::grey(40.0), 3);

    // The branch's sign over the counter: big and small lettering in dark red.
    c.fill(196.0, 40.0, 392.0, 102.0, Ycc::grey(236.0));
    c.border(196.0, 40.0, 392.0, 102.0, 3.0, Ycc(60.0, 112.0, 168.0));
    c.text((208.0, 50.0), (11, 1), 2.6, Ycc(58.0, 110.0, 176.0), 4);
    c.text((208.0, 80.0), (24, 2), 1.2, Ycc::grey(35.0), 5);

    // A clock: white face, dark rim, hour marks, hands.
    c.disc(322.0, 132.0, 15.0, |d| if d > 0.85 { Ycc::grey(32.0) } else { Ycc::grey(232.0) });
    for k in 0..12 {
        let a = k as f32 * std::f32::consts::TAU / 12.0;
        let (s, co) = a.sin_cos();
        c.line((322.0 + 10.0 * s, 132.0 - 10.0 * co), (322.0 + 12.0 * s, 132.0 - 12.0 * co), 0.6, Ycc::grey(40.0));
    }
    c.line((322.0, 132.0), (328.0, 127.0), 0.9, Ycc::grey(25.0));
    c.line((322.0, 132.0), (322.0, 121.0), 0.6, Ycc::grey(25.0));

    // Two windows: dark frames and mullions, horizontal blinds in daylight.
    let slat = c.len(2.0);
    for (x0, x1) in [(404.0, 500.0), (516.0, 612.0)] {
        c.paint(x0, 34.0, x1, 152.0, |_, y, _| {
            Some(if (y / slat).is_multiple_of(2) { Ycc(234.0, 136.0, 122.0) } else { Ycc(194.0, 138.0, 121.0) })
        });
        c.border(x0, 34.0, x1, 152.0, 4.0, Ycc::grey(54.0));
        let mid = (x0 + x1) / 2.0;
        c.fill(mid - 1.5, 34.0, mid + 1.5, 152.0, Ycc::grey(54.0));
        c.fill(x0 - 4.0, 152.0, x1 + 4.0, 158.0, Ycc::grey(205.0)); // sill
    }

    // Cabinet on the right: dark body, drawer joints, bright handles, a lit top edge.
    c.fill(566.0, 108.0, 628.0, 262.0, Ycc(42.0, 126.0, 130.0));
    c.fill(566.0, 108.0, 628.0, 111.0, Ycc::grey(118.0));
    for k in 0..5 {
        let y = 138.0 + k as f32 * 25.0;
        c.fill(568.0, y, 626.0, y + 2.0, Ycc::grey(86.0));
        c.fill(590.0, y - 14.0, 604.0, y - 10.0, Ycc::grey(204.0));
    }

    // The counter: wood front with grain, a marble top, a dark kick plate.
    let grain_p = c.len(7.0);
    c.paint(140.0, 198.0, 530.0, 300.0, |x, y, _| {
        let phase = (x + (hash(x as u32 / grain_p as u32, 0, 6) % 3) as usize) % grain_p;
        let tri = (phase as f32 / grain_p as f32 - 0.5).abs() * 2.0;
        let fleck = 3.0 * signed(hash(x as u32, y as u32, 7));
        Some(Ycc(86.0 + 22.0 * tri + fleck, 108.0, 152.0))
    });
    let (panel, gap) = (c.len(78.0), c.len(2.0));
    c.paint(140.0, 198.0, 530.0, 300.0, |x, _, _| (x % panel < gap).then_some(Ycc(48.0, 112.0, 146.0)));
    c.fill(134.0, 188.0, 536.0, 198.0, Ycc(204.0, 126.0, 128.0));
    c.fill(134.0, 196.0, 536.0, 198.0, Ycc::grey(150.0));
    c.fill(140.0, 300.0, 530.0, 312.0, Ycc::grey(34.0));

    // Two monitors on the counter, with lines of text on their screens.
    for x0 in [190.0, 392.0] {
        c.fill(x0, 150.0, x0 + 58.0, 186.0, Ycc::grey(28.0));
        c.fill(x0 + 3.0, 153.0, x0 + 55.0, 182.0, Ycc(72.0, 146.0, 116.0));
        c.text((x0 + 5.0, 156.0), (10, 3), 0.8, Ycc(190.0, 140.0, 120.0), 8 + x0 as u32);
        c.fill(x0 + 24.0, 186.0, x0 + 34.0, 188.0, Ycc::grey(40.0));
    }
    c.p
}

/// Three box blurs of radius `r` in each direction (about a Gaussian of σ ≈ r × 1.08).
fn blur(p: &mut Planes, r: usize) {
    let (w, h) = (p.w, p.h);
    let mut line = vec![0.0f32; w.max(h)];
    let mut out = vec![0.0f32; w.max(h)];
    for plane in [&mut p.y, &mut p.cb, &mut p.cr] {
        for _ in 0..3 {
            for y in 0..h {
                let row = &mut plane[y * w..(y + 1) * w];
                box_line(row, r, &mut out[..w]);
                row.copy_from_slice(&out[..w]);
            }
            for x in 0..w {
                for y in 0..h {
                    line[y] = plane[y * w + x];
                }
                box_line(&line[..h], r, &mut out[..h]);
                for y in 0..h {
                    plane[y * w + x] = out[y];
                }
            }
        }
    }
}

/// A moving average of width 2r + 1 over `src`, the edges repeated.
fn box_line(src: &[f32], r: usize, out: &mut [f32]) {
    let n = src.len();
    if n == 0 {
        return;
    }
    let at = |i: isize| src[i.clamp(0, n as isize - 1) as usize];
    let r = r as isize;
    let norm = 1.0 / (2 * r + 1) as f32;
    let mut sum: f32 = (-r..=r).map(at).sum();
    for (i, o) in out.iter_mut().enumerate() {
        *o = sum * norm;
        let i = i as isize;
        sum += at(i + r + 1) - at(i - r);
    }
}

/// Tape over the lens: dark grey, a faint gradient where light leaks in.
fn covered(w: usize, h: usize) -> Planes {
    let mut c = Canvas::new(w, h);
    let (cw, ch) = (w as f32, h as f32);
    c.paint(0.0, 0.0, REF_W, REF_H, |x, y, _| {
        let (u, v) = (x as f32 / cw, y as f32 / ch);
        Some(Ycc(34.0 + 3.0 * u + 1.0 * v, 127.0, 129.0))
    });
    c.p
}

/// The pictures of a scene: `n` frames, each its noise, as interleaved Y, Cb, Cr bytes
/// (`w × h × 3`), handed to `each` one by one.
///
/// The noise is one table of normal samples (at least a sample per pixel), read from a random
/// place for each frame and each plane: independent from pixel to pixel, different from frame
/// to frame, and cheap enough that a debug build makes the pictures in a fraction of a second.
pub(crate) fn frames(scene: Scene, w: usize, h: usize, n: usize, mut each: impl FnMut(&[u8])) {
    let mut base = match scene {
        Scene::Covered => covered(w, h),
        _ => interior(w, h),
    };
    let sigma = match scene {
        Scene::Covered => 0.6,
        _ => NOISE_SIGMA,
    };
    match scene {
        Scene::Blurred => blur(&mut base, (BLUR_RADIUS * h as f32 / REF_H).round().max(1.0) as usize),
        Scene::Dark => {
            for v in &mut base.y {
                *v *= DARK_GAIN;
            }
            for v in base.cb.iter_mut().chain(base.cr.iter_mut()) {
                *v = NEUTRAL + (*v - NEUTRAL) * DARK_GAIN;
            }
        }
        Scene::Normal | Scene::Covered => {}
    }
    let salt: u64 = match scene {
        Scene::Normal => 1,
        Scene::Covered => 2,
        Scene::Dark => 3,
        Scene::Blurred => 4,
    };
    let mut rng = Rng(0x5EED_0000 ^ (salt << 32) ^ ((w as u64) << 40) ^ ((h as u64) << 16));
    let pixels = w * h;
    let len = pixels.next_power_of_two().max(2);
    let mask = len - 1;
    // In whole levels (the picture is, too); chroma takes half.
    let table: Vec<i16> = (0..len / 2).flat_map(|_| rng.normals()).map(|z| (sigma * z).round() as i16).collect();
    let plane = |p: &[f32]| -> Vec<i16> { p.iter().map(|v| v.round().clamp(-1000.0, 1000.0) as i16).collect() };
    let (y, cb, cr) = (plane(&base.y), plane(&base.cb), plane(&base.cr));
    drop(base);
    let mut buf = vec![0u8; pixels * 3];
    for _ in 0..n {
        let (oy, oc) = (rng.next() as usize & mask, rng.next() as usize & mask);
        for (i, px) in buf.chunks_exact_mut(3).enumerate() {
            let ny = table[(i + oy) & mask];
            let nc = table[(i + oc) & mask] / 2;
            px[0] = (y[i] + ny).clamp(0, 255) as u8;
            // Chroma noise: one sample, leaning Cb against Cr.
            px[1] = (cb[i] + nc).clamp(0, 255) as u8;
            px[2] = (cr[i] - nc / 2).clamp(0, 255) as u8;
        }
        each(&buf);
    }
}
