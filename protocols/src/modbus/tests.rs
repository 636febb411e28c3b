use std::sync::Arc;

use proptest::prelude::*;

use super::*;

fn one_err(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e,
    }
}

fn has(errs: &[String], needle: &str) -> bool {
    errs.iter().any(|e| e.contains(needle))
}

fn assert_has(errs: &[String], needle: &str) {
    assert!(has(errs, needle), "no error containing {needle:?} in {errs:#?}");
}

const HEAD: &str = "name = \"t\"\n";

fn point(body: &str) -> String {
    format!("{HEAD}[[point]]\n{body}\n")
}

#[test]
fn builtins_parse_and_validate() {
    for name in BUILTIN_NAMES {
        let text = builtin_text(name).unwrap();
        let p = parse(text).unwrap_or_else(|e| panic!("{name}: {e:#?}"));
        assert_eq!(p.name, name);
        assert!(p.validate().is_empty());
        assert!(builtin(name).is_some());
    }
    assert!(builtin("nope").is_none());
    let alarm = builtin("generic-alarm").unwrap();
    assert_eq!(alarm.points().iter().filter(|p| p.role == Role::Zone).count(), 16);
    assert!(alarm.point("zone.16").unwrap().twenty_four_hour);
    assert!(!alarm.point("zone.15").unwrap().twenty_four_hour);
    let access = builtin("generic-access").unwrap();
    assert_eq!(access.points().iter().filter(|p| p.role == Role::Door).count(), 8);
    assert_eq!(access.point("reader.8").unwrap().bit, Some(7));
    let zsw = builtin("zone-status-word").unwrap();
    assert_eq!(zsw.points().iter().filter(|p| p.role == Role::Zone).count(), 200);
    assert_eq!(zsw.point("zone.200").unwrap().address, 199);
}

#[test]
fn builtin_plans_are_small() {
    let alarm = builtin("generic-alarm").unwrap();
    assert_eq!(alarm.plan(DEFAULT_MAX_GAP), vec![ReadRequest { table: Table::Holding, address: 0, count: 22 }]);
    let fast = alarm.read_plan(DEFAULT_MAX_GAP, |p| p.tier == Tier::Fast);
    assert_eq!(fast.requests(), &[ReadRequest { table: Table::Holding, address: 0, count: 20 }]);
    let zsw = builtin("zone-status-word").unwrap();
    let plan = zsw.plan(DEFAULT_MAX_GAP);
    assert_eq!(
        plan,
        vec![
            ReadRequest { table: Table::Holding, address: 0, count: 125 },
            ReadRequest { table: Table::Holding, address: 125, count: 75 },
            ReadRequest { table: Table::Holding, address: 500, count: 4 },
            ReadRequest { table: Table::Holding, address: 600, count: 2 },
        ]
    );
    let access = builtin("generic-access").unwrap();
    assert_eq!(access.plan(DEFAULT_MAX_GAP).len(), 4, "{:?}", access.plan(DEFAULT_MAX_GAP));
}

#[test]
fn repeat_expands_ids_addresses_and_bits() {
    let p = parse(&point(
        "id = \"r.{n}\"\nrole = \"reader-fault\"\ntable = \"holding\"\naddress = 10\nbit = 2\ncount = 3\nrules = [{ value = 1, state = \"reader-fault\" }]\ndefault = \"ok\"",
    ))
    .unwrap();
    let got: Vec<_> = p.points().iter().map(|p| (p.id.as_str(), p.address, p.bit)).collect();
    assert_eq!(got, vec![("r.1", 10, Some(2)), ("r.2", 10, Some(3)), ("r.3", 10, Some(4))]);

    let p = parse(&point(
        "id = \"v{n}\"\nrole = \"value\"\ntable = \"input\"\naddress = 0\ntype = \"f32\"\ncount = 3\nfirst = 0",
    ))
    .unwrap();
    let got: Vec<_> = p.points().iter().map(|p| (p.id.as_str(), p.address)).collect();
    assert_eq!(got, vec![("v0", 0), ("v1", 2), ("v2", 4)], "32-bit points stride by 2 by default");

    let p = parse(&point("id = \"v{n}\"\nrole = \"value\"\ntable = \"input\"\naddress = 100\ncount = 2\nstride = 10"))
        .unwrap();
    assert_eq!(p.points()[1].address, 110);
}

#[test]
fn syntax_errors_name_the_line() {
    let errs = one_err("name = \"t\"\n[[point]]\nid = \n");
    assert_eq!(errs.len(), 1);
    assert_has(&errs, "line 3");
    let errs = one_err(&point("id = \"a\"\nrole = \"value\"\ntable = \"holding\"\nadress = 1"));
    assert_has(&errs, "unknown field `adress`");
}

#[test]
fn unknown_names_are_reported_together() {
    let errs = one_err(&format!(
        "{HEAD}[[point]]\nid = \"a\"\nrole = \"zonee\"\ntable = \"holding\"\naddress = 0\n\
         [[point]]\nid = \"b\"\nrole = \"value\"\ntable = \"holdings\"\naddress = 1\n\
         [[point]]\nid = \"c\"\nrole = \"value\"\ntable = \"holding\"\naddress = 2\ntype = \"u64\"\n\
         [[point]]\nid = \"d\"\nrole = \"value\"\ntable = \"holding\"\naddress = 3\ntype = \"u32\"\nword_order = \"middle\"\n\
         [[point]]\nid = \"e\"\nrole = \"value\"\ntable = \"holding\"\naddress = 5\ntier = \"medium\"\n"
    ));
    assert_has(&errs, "point[0] \"a\": unknown role \"zonee\"");
    assert_has(&errs, "point[1] \"b\": unknown table \"holdings\"");
    assert_has(&errs, "point[2] \"c\": unknown type \"u64\"");
    assert_has(&errs, "point[3] \"d\": word_order = \"middle\"");
    assert_has(&errs, "point[4] \"e\": unknown tier \"medium\"");
    assert_eq!(errs.len(), 5, "{errs:#?}");
}

#[test]
fn addresses_out_of_range() {
    let errs = one_err(&point("id = \"a\"\nrole = \"value\"\ntable = \"holding\"\naddress = -1"));
    assert_has(&errs, "address -1 is outside 0..=65535");
    let errs = one_err(&point("id = \"a\"\nrole = \"value\"\ntable = \"holding\"\naddress = 65536"));
    assert_has(&errs, "address 65536 is outside 0..=65535");
    // A 32-bit value needs two registers.
    let errs = one_err(&point("id = \"a\"\nrole = \"value\"\ntable = \"holding\"\naddress = 65535\ntype = \"u32\""));
    assert_has(&errs, "point \"a\": u32 at address 65535 needs addresses 65535..=65536, past the last address 65535");
    // A repeat that runs off the end.
    let errs = one_err(&point("id = \"a{n}\"\nrole = \"value\"\ntable = \"holding\"\naddress = 65530\ncount = 10"));
    assert_has(&errs, "repeat 7 (\"a7\") lands at address 65536");
    let errs =
        one_err(&point("id = \"a{n}\"\nrole = \"value\"\ntable = \"holding\"\naddress = 0\nbit = 14\ncount = 3"));
    assert_has(&errs, "repeat 3 (\"a3\") lands on bit 16");
    let errs = one_err(&point("id = \"a\"\nrole = \"value\"\ntable = \"holding\"\naddress = 0\nbit = 16"));
    assert_has(&errs, "bit 16 is outside 0..=15");
}

#[test]
fn bits_and_types_on_tables() {
    let errs = one_err(&point("id = \"a\"\nrole = \"value\"\ntable = \"coil\"\naddress = 0\nbit = 1"));
    assert_has(&errs, "point \"a\": bit is set on a coil");
    let errs = one_err(&point("id = \"a\"\nrole = \"value\"\ntable = \"discrete-input\"\naddress = 0\ntype = \"u16\""));
    assert_has(&errs, "type u16 on a discrete-input");
    let errs =
        one_err(&point("id = \"a\"\nrole = \"value\"\ntable = \"holding\"\naddress = 0\nbit = 3\ntype = \"u16\""));
    assert_has(&errs, "bit is set but type is u16");
    let errs = one_err(&point("id = \"a\"\nrole = \"value\"\ntable = \"holding\"\naddress = 0\ntype = \"bool\""));
    assert_has(&errs, "type bool on a holding register needs bit");
    let errs =
        one_err(&point("id = \"a\"\nrole = \"value\"\ntable = \"holding\"\naddress = 0\nword_order = \"little\""));
    assert_has(&errs, "word_order only applies to 32-bit types");
}

#[test]
fn states_outside_the_vocabulary() {
    let errs = one_err(&point(
        "id = \"z\"\nrole = \"zone\"\ntable = \"holding\"\naddress = 0\nrules = [{ value = 1, state = \"alarmed\" }]\ndefault = \"normal\"",
    ));
    assert_has(
        &errs,
        "point \"z\": state \"alarmed\" is not a zone state; use one of normal, alarm, tamper, fault, bypassed, disabled",
    );
    let errs = one_err(&format!(
        "{HEAD}[states.doors]\nrules = [{{ value = 1, state = \"ajar\" }}]\n[[point]]\nid = \"d\"\nrole = \"door\"\ntable = \"holding\"\naddress = 0\nstates = \"doors\"\n"
    ));
    assert_has(&errs, "state \"ajar\" (from state set \"doors\") is not a door state");
    let errs = one_err(&point("id = \"z\"\nrole = \"zone\"\ntable = \"holding\"\naddress = 0"));
    assert_has(&errs, "a zone point needs states");
    let errs = one_err(&point(
        "id = \"h\"\nrole = \"heartbeat\"\ntable = \"holding\"\naddress = 0\nrules = [{ value = 1, state = \"x\" }]",
    ));
    assert_has(&errs, "a heartbeat carries no states");
    let errs = one_err(&point("id = \"z\"\nrole = \"zone\"\ntable = \"holding\"\naddress = 0\nstates = \"missing\""));
    assert_has(&errs, "unknown state set \"missing\"");
    let errs = one_err(&point(
        "id = \"p\"\nrole = \"partition\"\ntable = \"holding\"\naddress = 0\nrules = [{ value = 1, state = \"armed\" }]\ntwenty_four_hour = true",
    ));
    assert_has(&errs, "twenty_four_hour applies to zones only");
    // Free-form states on a value point are fine.
    parse(&point(
        "id = \"t\"\nrole = \"value\"\ntable = \"holding\"\naddress = 0\nrules = [{ value = 1, state = \"hot\" }]",
    ))
    .unwrap();
}

#[test]
fn rules_that_cannot_work() {
    let errs = one_err(&point(
        "id = \"z\"\nrole = \"zone\"\ntable = \"holding\"\naddress = 0\nrules = [{ value = 1 }]\ndefault = \"normal\"",
    ));
    assert_has(&errs, "point[0] \"z\": rule 1 references no state");
    let errs = one_err(&point(
        "id = \"z\"\nrole = \"zone\"\ntable = \"holding\"\naddress = 0\nrules = [{ state = \"alarm\" }]",
    ));
    assert_has(&errs, "rule 1 has neither value nor mask");
    let errs = one_err(&point(
        "id = \"z\"\nrole = \"zone\"\ntable = \"holding\"\naddress = 0\ntype = \"f32\"\nrules = [{ mask = 1, state = \"alarm\" }]",
    ));
    assert_has(&errs, "mask on a f32 value");
    let errs = one_err(&point(
        "id = \"z\"\nrole = \"zone\"\ntable = \"holding\"\naddress = 0\nrules = [{ value = 70000, state = \"alarm\" }]",
    ));
    assert_has(&errs, "value 70000 can never be read from a u16");
    let errs = one_err(&point(
        "id = \"z\"\nrole = \"zone\"\ntable = \"holding\"\naddress = 0\nrules = [{ mask = 0x10000, state = \"alarm\" }]",
    ));
    assert_has(&errs, "mask 0x10000 has no bit inside a u16");
    let errs = one_err(&point(
        "id = \"z\"\nrole = \"zone\"\ntable = \"holding\"\naddress = 0\nrules = [{ mask = 0x3, value = 4, state = \"alarm\" }]",
    ));
    assert_has(&errs, "value 4 has bits outside mask 0x3");
    let errs = one_err(&point(
        "id = \"z\"\nrole = \"zone\"\ntable = \"holding\"\naddress = 0\nrules = [{ value = \"on\", state = \"alarm\" }]",
    ));
    assert_has(&errs, "is not a number");
}

#[test]
fn overlaps_and_duplicates() {
    let errs = one_err(&format!(
        "{HEAD}[[point]]\nid = \"a\"\nrole = \"value\"\ntable = \"holding\"\naddress = 10\ntype = \"u32\"\n\
         [[point]]\nid = \"b\"\nrole = \"value\"\ntable = \"holding\"\naddress = 11\n\
         [[point]]\nid = \"c\"\nrole = \"value\"\ntable = \"input\"\naddress = 11\n\
         [[point]]\nid = \"d\"\nrole = \"value\"\ntable = \"holding\"\naddress = 20\nbit = 3\n\
         [[point]]\nid = \"e\"\nrole = \"value\"\ntable = \"holding\"\naddress = 20\nbit = 3\n\
         [[point]]\nid = \"f\"\nrole = \"value\"\ntable = \"holding\"\naddress = 20\nbit = 4\n\
         [[point]]\nid = \"g\"\nrole = \"value\"\ntable = \"holding\"\naddress = 20\n\
         [[point]]\nid = \"a\"\nrole = \"value\"\ntable = \"coil\"\naddress = 0\n"
    ));
    assert_has(&errs, "point \"b\" overlaps point \"a\" at holding 11");
    assert_has(&errs, "point \"e\" overlaps point \"d\" at holding 20 bit 3");
    assert_has(&errs, "point \"g\" overlaps point \"d\" at holding 20");
    assert_has(&errs, "point \"a\": duplicate id");
    assert!(!has(&errs, "\"c\""), "different tables do not overlap: {errs:#?}");
    assert!(!has(&errs, "point \"f\" overlaps"), "different bits do not overlap: {errs:#?}");
    assert_eq!(errs.len(), 4, "{errs:#?}");
    let errs = one_err(&point("id = \"zone\"\nrole = \"value\"\ntable = \"holding\"\naddress = 0\ncount = 2"));
    assert_has(&errs, "count = 2 but the id has no {n}");
}

#[test]
fn empty_or_nameless_profiles() {
    let errs = one_err("name = \"\"\n");
    assert_has(&errs, "name is empty");
    assert_has(&errs, "no points");
    let errs = one_err(&format!(
        "{HEAD}slow_every = 0\n[[point]]\nid = \"h\"\nrole = \"heartbeat\"\ntable = \"input\"\naddress = 0\n"
    ));
    assert_has(&errs, "slow_every = 0 is out of range");
}

fn pt(data_type: DataType, byte: Order, word: Order) -> Point {
    Point { data_type, byte_order: byte, word_order: word, ..Point::new("p", Role::Value, Table::Holding, 0) }
}

#[test]
fn decode_every_type_and_order() {
    use Order::{Big, Little};
    let r = |p: &Point, regs: &[u16]| p.decode_registers(regs).unwrap().raw;
    assert_eq!(r(&pt(DataType::U16, Big, Big), &[0x1234]), 4660.0);
    assert_eq!(r(&pt(DataType::U16, Little, Big), &[0x3412]), 4660.0);
    assert_eq!(r(&pt(DataType::I16, Big, Big), &[0xFFFE]), -2.0);
    assert_eq!(r(&pt(DataType::I16, Little, Big), &[0xFEFF]), -2.0);
    // 0x12345678 as ABCD, CDAB, BADC, DCBA.
    assert_eq!(r(&pt(DataType::U32, Big, Big), &[0x1234, 0x5678]), 305_419_896.0);
    assert_eq!(r(&pt(DataType::U32, Big, Little), &[0x5678, 0x1234]), 305_419_896.0);
    assert_eq!(r(&pt(DataType::U32, Little, Big), &[0x3412, 0x7856]), 305_419_896.0);
    assert_eq!(r(&pt(DataType::U32, Little, Little), &[0x7856, 0x3412]), 305_419_896.0);
    assert_eq!(r(&pt(DataType::I32, Big, Big), &[0xFFFF, 0xFFFD]), -3.0);
    assert_eq!(r(&pt(DataType::I32, Big, Little), &[0xFFFD, 0xFFFF]), -3.0);
    // 1.5f32 = 0x3FC00000.
    assert_eq!(r(&pt(DataType::F32, Big, Big), &[0x3FC0, 0x0000]), 1.5);
    assert_eq!(r(&pt(DataType::F32, Big, Little), &[0x0000, 0x3FC0]), 1.5);
    assert_eq!(r(&pt(DataType::F32, Little, Little), &[0x0000, 0xC03F]), 1.5);
    // Too short.
    assert!(pt(DataType::U32, Big, Big).decode_registers(&[1]).is_none());
    assert!(pt(DataType::U16, Big, Big).decode_registers(&[]).is_none());
    // Bits.
    let mut b = Point::new("b", Role::Value, Table::Holding, 0);
    b.data_type = DataType::Bool;
    b.bit = Some(15);
    assert_eq!(b.decode_registers(&[0x8000]).unwrap().raw, 1.0);
    assert_eq!(b.decode_registers(&[0x7FFF]).unwrap().raw, 0.0);
    let c = Point::new("c", Role::Value, Table::Coil, 0);
    assert_eq!(c.decode_bit(true).raw, 1.0);
}

#[test]
fn encode_round_trips_every_type_and_order() {
    use Order::{Big, Little};
    let cases: &[(DataType, f64)] = &[
        (DataType::U16, 65535.0),
        (DataType::I16, -32768.0),
        (DataType::U32, 4_000_000_000.0),
        (DataType::I32, -123_456_789.0),
        (DataType::F32, -2.25),
    ];
    for &(t, v) in cases {
        for byte in [Big, Little] {
            for word in [Big, Little] {
                let p = pt(t, byte, word);
                let regs: Vec<u16> = match p.encode(v).unwrap() {
                    Encoded::One(w) => vec![w],
                    Encoded::Two(w) => w.to_vec(),
                    Encoded::Bit(_) => unreachable!(),
                };
                assert_eq!(p.decode_registers(&regs).unwrap().raw, v, "{t} {byte:?} {word:?}");
            }
        }
    }
    assert!(pt(DataType::U16, Big, Big).encode(65536.0).is_err());
    assert!(pt(DataType::U16, Big, Big).encode(1.5).is_err());
    assert!(pt(DataType::I16, Big, Big).encode(f64::NAN).is_err());
}

#[test]
fn bit_rules_first_match_wins() {
    let p = builtin("zone-status-word").unwrap();
    let z = p.point("zone.1").unwrap();
    let s = |w: u16| z.decode_registers(&[w]).unwrap().state.unwrap().to_string();
    assert_eq!(s(0), "normal");
    assert_eq!(s(0b00001), "alarm");
    assert_eq!(s(0b00010), "fault");
    assert_eq!(s(0b00011), "alarm");
    assert_eq!(s(0b00101), "disabled");
    assert_eq!(s(0b01001), "bypassed");
    assert_eq!(s(0b10101), "tamper");
    assert_eq!(s(0x8000), "normal", "undefined bits are ignored");
    // value+mask rules compare under the mask.
    let m = StateMap {
        name: None,
        rules: vec![Rule { value: Some(2.0), mask: Some(0x6), state: "x".into() }],
        default: Some("y".into()),
    };
    assert_eq!(m.state_of(0.0, 0b1010), Some("x"));
    assert_eq!(m.state_of(0.0, 0b1110), Some("y"));
    // Default and no match.
    let alarm = builtin("generic-alarm").unwrap();
    let z = alarm.point("zone.1").unwrap();
    assert_eq!(z.decode_registers(&[99]).unwrap().state, Some("fault"));
    let part = alarm.point("partition.1").unwrap();
    assert_eq!(part.decode_registers(&[7]).unwrap().state, None);
    let ac = alarm.point("panel.ac-loss").unwrap();
    assert_eq!(ac.decode_registers(&[0b0001]).unwrap().state, Some("ac-loss"));
    assert_eq!(ac.decode_registers(&[0b1110]).unwrap().state, Some("ok"));
}

#[test]
fn raw_for_state_finds_values_that_decode_back() {
    for name in BUILTIN_NAMES {
        let p = builtin(name).unwrap();
        for pt in p.points() {
            let Some(map) = pt.states.as_deref() else {
                continue;
            };
            for state in map.states() {
                for current in [0.0, 0b11111 as f64] {
                    let raw = pt.raw_for_state(state, current).unwrap_or_else(|e| panic!("{name} {}: {e}", pt.id));
                    let bits = raw as u32;
                    assert_eq!(pt.state_of(raw, bits), Some(state), "{name} {} {state}", pt.id);
                }
            }
        }
    }
    let p = builtin("zone-status-word").unwrap();
    let z = p.point("zone.1").unwrap();
    // Setting alarm on a zone in trouble keeps the trouble bit.
    assert_eq!(z.raw_for_state("alarm", 2.0).unwrap(), 3.0);
    assert!(matches!(z.raw_for_state("nope", 0.0), Err(EncodeError::UnknownState { .. })));
    // A state shadowed by an earlier rule cannot be produced.
    let mut shadowed = Point::new("s", Role::Zone, Table::Holding, 0);
    shadowed.states = Some(Arc::new(StateMap {
        name: None,
        rules: vec![
            Rule { value: None, mask: Some(1), state: "alarm".into() },
            Rule { value: Some(1.0), mask: None, state: "fault".into() },
        ],
        default: None,
    }));
    assert!(matches!(shadowed.raw_for_state("fault", 0.0), Err(EncodeError::Unreachable { .. })));
}

#[test]
fn plan_merges_within_gap_and_limits() {
    let mut pts = Vec::new();
    for a in [0u16, 1, 2, 10, 30, 31] {
        pts.push(Point::new(format!("h{a}"), Role::Value, Table::Holding, a));
    }
    let p = Profile::new("t", pts);
    let plan = p.plan(8);
    assert_eq!(
        plan,
        vec![
            ReadRequest { table: Table::Holding, address: 0, count: 11 },
            ReadRequest { table: Table::Holding, address: 30, count: 2 }
        ]
    );
    let plan0 = p.plan(0);
    assert_eq!(plan0.len(), 3, "{plan0:?}");
    let plan_big = p.plan(100);
    assert_eq!(plan_big, vec![ReadRequest { table: Table::Holding, address: 0, count: 32 }]);

    // 300 contiguous registers need three requests; 2500 coils need two.
    let regs: Vec<Point> = (0..300).map(|a| Point::new(format!("r{a}"), Role::Value, Table::Input, a)).collect();
    let coils: Vec<Point> = (0..2500).map(|a| Point::new(format!("c{a}"), Role::Value, Table::Coil, a)).collect();
    let p = Profile::new("t", regs.into_iter().chain(coils).collect());
    let plan = p.plan(8);
    assert_eq!(
        plan,
        vec![
            ReadRequest { table: Table::Coil, address: 0, count: 2000 },
            ReadRequest { table: Table::Coil, address: 2000, count: 500 },
            ReadRequest { table: Table::Input, address: 0, count: 125 },
            ReadRequest { table: Table::Input, address: 125, count: 125 },
            ReadRequest { table: Table::Input, address: 250, count: 50 },
        ]
    );
    // A 32-bit value is never split across requests.
    let mut pts: Vec<Point> = (0..124).map(|a| Point::new(format!("r{a}"), Role::Value, Table::Holding, a)).collect();
    pts.push(Point { data_type: DataType::U32, ..Point::new("wide", Role::Value, Table::Holding, 124) });
    let p = Profile::new("t", pts);
    let plan = p.plan(8);
    assert_eq!(
        plan,
        vec![
            ReadRequest { table: Table::Holding, address: 0, count: 124 },
            ReadRequest { table: Table::Holding, address: 124, count: 2 }
        ]
    );
}

#[test]
fn decode_through_a_plan_and_through_reads() {
    let p = builtin("generic-access").unwrap();
    let plan = p.read_plan(DEFAULT_MAX_GAP, |_| true);
    let mut data = Vec::new();
    for req in plan.requests() {
        data.push(match req.table {
            Table::Coil => RawData::Bits((0..req.count).map(|i| i != 2).collect()),
            Table::DiscreteInput => RawData::Bits((0..req.count).map(|i| i == 1).collect()),
            Table::Holding => RawData::Registers(
                (0..req.count)
                    .map(|a| {
                        if a == 3 {
                            2
                        } else if a == 8 {
                            0b100
                        } else {
                            0
                        }
                    })
                    .collect(),
            ),
            Table::Input => RawData::Registers(vec![4242; usize::from(req.count)]),
        });
    }
    let mut seen = std::collections::BTreeMap::new();
    plan.decode_with(&p, &data, |_, pt, r| {
        seen.insert(pt.id.clone(), r.to_value());
    })
    .unwrap();
    assert_eq!(seen.len(), p.points().len());
    assert_eq!(seen["door.4"].state.as_deref(), Some("forced"));
    assert_eq!(seen["door.1"].state.as_deref(), Some("closed"));
    assert_eq!(seen["lock.3"].state.as_deref(), Some("unlocked"));
    assert_eq!(seen["lock.1"].state.as_deref(), Some("locked"));
    assert_eq!(seen["reader.3"].state.as_deref(), Some("reader-fault"));
    assert_eq!(seen["reader.2"].state.as_deref(), Some("ok"));
    assert_eq!(seen["panel.battery-low"].state.as_deref(), Some("battery-low"));
    assert_eq!(seen["heartbeat"].raw, 4242.0);
    assert_eq!(seen["heartbeat"].state, None);

    let reads: Vec<(ReadRequest, RawData)> = plan.requests().iter().copied().zip(data.iter().cloned()).collect();
    assert_eq!(p.decode(&reads).unwrap(), seen);

    // Short or mismatched data is an error, not a panic.
    let mut short = data.clone();
    short[0] = RawData::Bits(vec![]);
    assert!(matches!(plan.decode_with(&p, &short, |_, _, _| {}), Err(DecodeError::Short { .. })));
    let mut wrong = data.clone();
    wrong[0] = RawData::Registers(vec![0; 100]);
    assert!(matches!(plan.decode_with(&p, &wrong, |_, _, _| {}), Err(DecodeError::Kind { .. })));
    assert!(matches!(plan.decode_with(&p, &data[1..], |_, _, _| {}), Err(DecodeError::ResultCount { .. })));
}

fn arb_point() -> impl Strategy<Value = Point> {
    (0usize..4, 0u16..=65535, prop::bool::ANY, prop::bool::ANY).prop_map(|(t, a, wide, slow)| {
        let table = Table::ALL[t];
        let mut p = Point::new(format!("p{t}-{a}"), Role::Value, table, a);
        if wide && !table.is_bits() && a < 65535 {
            p.data_type = DataType::U32;
        }
        if slow {
            p.tier = Tier::Slow;
        }
        p
    })
}

proptest! {
    #[test]
    fn plan_covers_every_point_exactly_once_within_limits(
        points in prop::collection::vec(arb_point(), 0..300),
        max_gap in 0u16..200,
        clustered in prop::bool::ANY,
    ) {
        // Clustered addresses exercise merging; spread ones exercise splitting.
        // Valid profiles only: points of one table never overlap.
        let mut used = std::collections::HashSet::new();
        let points: Vec<Point> = points
            .into_iter()
            .map(|mut p| {
                if clustered {
                    p.address %= 400;
                }
                p
            })
            .filter(|p| {
                let (s, e) = p.span();
                if (s..e).any(|a| used.contains(&(p.table, a))) {
                    return false;
                }
                used.extend((s..e).map(|a| (p.table, a)));
                true
            })
            .collect();
        let profile = Profile::new("prop", points);
        let plan = profile.read_plan(max_gap, |_| true);
        let reqs = plan.requests();
        for r in reqs {
            prop_assert!(r.count >= 1);
            prop_assert!(r.count <= r.table.max_per_read(), "{r:?}");
            prop_assert!(r.span().1 <= 65536);
        }
        // No two requests of a table overlap, and consecutive ones could not have merged.
        for w in reqs.windows(2) {
            if w[0].table == w[1].table {
                prop_assert!(w[0].span().1 <= w[1].span().0);
                let gap = w[1].span().0 - w[0].span().1;
                let merged = w[1].span().1 - w[0].span().0;
                prop_assert!(gap > u32::from(max_gap) || merged > u32::from(w[0].table.max_per_read()), "{:?} could merge", w);
            }
        }
        for (i, p) in profile.points().iter().enumerate() {
            let n = reqs.iter().filter(|r| r.covers(p)).count();
            prop_assert_eq!(n, 1, "point {} {:?} covered {} times by {:?}", i, p.span(), n, reqs);
        }
        let idx: Vec<usize> = plan.point_indices().collect();
        prop_assert_eq!(idx, (0..profile.points().len()).collect::<Vec<_>>());
        // Every request starts and ends on a point (no wasted reads at the edges).
        for r in reqs {
            let (s, e) = r.span();
            prop_assert!(profile.points().iter().any(|p| p.table == r.table && p.span().0 == s));
            prop_assert!(profile.points().iter().any(|p| p.table == r.table && p.span().1 == e));
        }
        // Decoding zeros through the plan yields every point.
        let data: Vec<RawData> = reqs
            .iter()
            .map(|r| if r.table.is_bits() { RawData::Bits(vec![false; usize::from(r.count)]) } else { RawData::Registers(vec![0; usize::from(r.count)]) })
            .collect();
        let mut n = 0;
        plan.decode_with(&profile, &data, |_, _, _| n += 1).unwrap();
        prop_assert_eq!(n, profile.points().len());
        // A tier filter plans only its points.
        let fast = profile.read_plan(max_gap, |p| p.tier == Tier::Fast);
        prop_assert_eq!(fast.point_indices().count(), profile.points().iter().filter(|p| p.tier == Tier::Fast).count());
    }
}
