//! An executor session in this process, driven by random frame sequences (the
//! `executor_session` fuzz target, replayed by `tests/tests/replay.rs`).
//!
//! [`run_session`] plays the controller of `mapcore_executor::serve_in_process` through an
//! in-memory byte stream: it reads the executor's Setup, then turns each [`Step`] into a frame
//! when the executor asks for more bytes, and reads each reply as the executor writes it. A
//! small model of the live slabs and regions (bases, keys, page ranges, contents, how many
//! dealloc actions will fail) predicts every structured call's outcome: success or failure,
//! the base and key returned, which batch entries fail, the bytes read back. Raw steps send
//! arbitrary payloads to the memory and read wrappers, and arbitrary frames; a raw call that
//! may have changed the map leaves the model unsure, and outcomes are then only checked for
//! shape (a Result with the call's sequence number). At the end, the session's report must
//! agree with the model, and nothing may be left reserved.
//!
//! Never sent, since they would act on this process rather than on the map: the run-as
//! wrappers, dylib loading, memory writes, and alloc actions naming foreign code (only
//! addresses below 64 KiB, which nothing maps, stand for foreign functions).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::rc::Rc;

use arbitrary::Arbitrary;
use mapcore::{Action, ActionError, MAX_ACTION_PAIRS, MAX_SEGMENTS};
use mapcore_executor::{serve_in_process, WxMode};
use mapcore_sps::{from_bytes, Header, InitializeArgs, Opcode, Reader, Seq, Writer, HEADER_LEN};

/// In an expected batch failure: the call fails as a whole, naming no entry.
const NO_ENTRY: usize = usize::MAX;

/// How many failing batch entries a reply names; it counts the others.
const SHOWN_FAILURES: usize = 8;

/// A fuzz input: the W^X mode of the executor's map, then the controller's steps.
#[derive(Debug, Arbitrary)]
pub struct SessionInput {
    /// The dual-mapped host instead of the flip host.
    pub dual_mapped: bool,
    /// What the controller sends, in order.
    pub steps: Vec<Step>,
}

/// One thing the controller does.
#[derive(Debug, Clone, Arbitrary)]
#[expect(missing_docs, reason = "each variant's doc says what its fields mean")]
pub enum Step {
    /// reserve of `pages % 9` pages, plus `odd` bytes (0 and odd sizes must fail).
    Reserve { pages: u8, odd: u8, orc_rt: bool },
    /// initialize in the `slab`-th live slab, modulo one more than there are (that one a
    /// released slab, or none).
    Initialize {
        slab: u8,
        segments: Vec<SegmentSpec>,
        /// `(n, finalize, dealloc)`: the finalize action is used only when `n < 32`.
        pairs: Vec<(u8, ActionSpec, ActionSpec)>,
        orc_rt: bool,
    },
    /// deinitialize of a batch of keys.
    Deinitialize { keys: Vec<Target>, orc_rt: bool },
    /// release of a batch of bases.
    Release { bases: Vec<Target>, orc_rt: bool },
    /// Reads a live region's readable segments back with `mem_read_buffers`.
    ReadBack { region: u8 },
    /// Arbitrary argument bytes to one of the wrappers it is safe to call ([`RAW_WRAPPERS`]);
    /// to a memory-manager wrapper, which leaves the model unsure, only when `rare < 16`.
    RawCall {
        rare: u8,
        wrapper: u8,
        payload: Vec<u8>,
    },
    /// An arbitrary frame: any opcode, sequence number, tag and size field; sent only when
    /// `rare < 16`, since most such frames end the session.
    RawFrame {
        rare: u8,
        opcode: u64,
        seqno: u64,
        tag: u64,
        size_delta: i8,
        payload: Vec<u8>,
    },
}

/// One segment of a structured initialize, in pages of the chosen slab.
#[derive(Debug, Clone, Arbitrary)]
pub struct SegmentSpec {
    page: u8,
    pages: u8,
    /// Bytes cut from the last page (the size stays at least 1).
    trim: u16,
    /// The wire group byte, modulo 16.
    group: u8,
    content_len: u16,
    fill: u8,
    /// 0xff: one byte past the page start.
    misalign: u8,
}

/// A structured alloc action. None of them can succeed: each names something that refuses to
/// run with these arguments, so a finalize action fails initialize and a dealloc action fails
/// its deinitialize or release.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum ActionSpec {
    /// No action.
    None,
    /// A foreign function at an address nothing maps.
    Unmapped(u16),
    /// One of the executor's symbols that is not an action (the reserve wrapper).
    NotAnAction,
    /// EH-frame registration of a range that holds no EH frame.
    RegisterGarbage(u8),
    /// EH-frame deregistration of a section never registered.
    DeregisterUnknown(u8),
}

/// A batch entry.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Target {
    /// The key or base of the n-th live region or slab.
    Live(u8),
    /// The key or base of the n-th one already gone.
    Gone(u8),
    /// A live one plus a small offset.
    Interior(u8, u16),
    /// Any address.
    Raw(u64),
}

/// Memory-manager names: LLVM 22's, then orc-rt's (reserve, initialize, deinitialize,
/// release, instance).
const LLVM_NAMES: [&str; 5] = [
    "__llvm_orc_SimpleExecutorMemoryManager_reserve_wrapper",
    "__llvm_orc_SimpleExecutorMemoryManager_initialize_wrapper",
    "__llvm_orc_SimpleExecutorMemoryManager_deinitialize_wrapper",
    "__llvm_orc_SimpleExecutorMemoryManager_release_wrapper",
    "__llvm_orc_SimpleExecutorMemoryManager_Instance",
];
const ORC_RT_NAMES: [&str; 5] = [
    "orc_rt_ci_sps_SimpleNativeMemoryMap_reserve",
    "orc_rt_ci_sps_SimpleNativeMemoryMap_initialize",
    "orc_rt_ci_sps_SimpleNativeMemoryMap_deinitializeMultiple",
    "orc_rt_ci_sps_SimpleNativeMemoryMap_releaseMultiple",
    "orc_rt_ci_SimpleNativeMemoryMap_Instance",
];
const READ_BUFFERS: &str = "__llvm_orc_bootstrap_mem_read_buffers_wrapper";
const REGISTER_EH: &str = "llvm_orc_registerEHFrameAllocAction";
const DEREGISTER_EH: &str = "llvm_orc_deregisterEHFrameAllocAction";

/// The wrappers raw steps may call: the memory manager's, the reads, the EH-frame actions,
/// and the symbols that are not callable at all.
pub const RAW_WRAPPERS: [&str; 20] = [
    LLVM_NAMES[0],
    LLVM_NAMES[1],
    LLVM_NAMES[2],
    LLVM_NAMES[3],
    ORC_RT_NAMES[0],
    ORC_RT_NAMES[1],
    ORC_RT_NAMES[2],
    ORC_RT_NAMES[3],
    "__llvm_orc_bootstrap_mem_read_uint8s_wrapper",
    "__llvm_orc_bootstrap_mem_read_uint16s_wrapper",
    "__llvm_orc_bootstrap_mem_read_uint32s_wrapper",
    "__llvm_orc_bootstrap_mem_read_uint64s_wrapper",
    "__llvm_orc_bootstrap_mem_read_pointers_wrapper",
    READ_BUFFERS,
    "__llvm_orc_bootstrap_mem_read_strings_wrapper",
    REGISTER_EH,
    DEREGISTER_EH,
    "__llvm_orc_SimpleRemoteEPC_dispatch_fn",
    LLVM_NAMES[4],
    ORC_RT_NAMES[4],
];

/// Foreign action addresses below this are never mapped (`vm.mmap_min_addr`).
const UNMAPPED_BELOW: u64 = 0x1_0000;

/// Most steps of one session, and pages of one slab: small enough for thousands of sessions
/// a second.
const MAX_STEPS: usize = 40;
const MAX_SLAB_PAGES: usize = 8;

/// What one session checked, for the replay's figures and its guard against a corpus that
/// reaches nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checked {
    /// Replies checked against the model's prediction.
    pub predicted: usize,
    /// Of those, successful initializes (regions the model followed).
    pub regions: usize,
    /// Of those, content read back and compared.
    pub read_backs: usize,
}

/// Runs one session of `input`, checks it, and says what it checked.
///
/// # Panics
///
/// A reply or the session's end differs from the model's prediction.
pub fn run_session(input: &SessionInput) -> Checked {
    let controller = Rc::new(RefCell::new(Controller::new(&input.steps)));
    let wx = if input.dual_mapped {
        WxMode::DualMapped
    } else {
        WxMode::Flip
    };
    let report = serve_in_process(
        Incoming(Rc::clone(&controller)),
        Outgoing(Rc::clone(&controller)),
        wx,
    );
    let mut controller = controller.borrow_mut();
    controller.read_replies();
    let expected_end = controller.ended.unwrap_or("eof");
    assert_eq!(report.end, expected_end, "session end: {report:?}");
    assert_eq!(report.live_slabs_after_shutdown, 0, "{report:?}");
    if controller.model.trusted {
        let model = &controller.model;
        assert_eq!(report.live_slabs_at_eof, model.slabs.len(), "{report:?}");
        assert_eq!(
            report.live_regions_at_eof,
            model.regions.len(),
            "{report:?}"
        );
        let failing = model.regions.values().any(|r| r.failing_deallocs > 0);
        assert_eq!(report.shutdown_failed, failing, "{report:?}");
    }
    controller.checked
}

/// The executor's input: the controller's frames, made when asked for.
struct Incoming(Rc<RefCell<Controller>>);

impl Read for Incoming {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.0.borrow_mut().read(buf))
    }
}

/// The executor's output: Setup, Results and Hangups, read as they come.
struct Outgoing(Rc<RefCell<Controller>>);

impl Write for Outgoing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().inbox.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the reply to the call in flight must be.
#[derive(Debug)]
enum Expect {
    /// Anything of the right shape: the model cannot tell.
    Any,
    /// reserve's `Expected<Addr>`: a new, aligned base if `true`, else a failure.
    Slab { valid: bool, size: usize },
    /// initialize's `Expected<Addr>`: this key (and this region recorded), or a failure.
    Key(Option<Region>),
    /// `Error`: success, or a failure naming exactly these entries.
    Batch(Vec<usize>),
    /// `Seq<Seq<u8>>`: these bytes.
    Buffers(Vec<Vec<u8>>),
}

/// The call in flight.
#[derive(Debug)]
struct InFlight {
    seqno: u64,
    expect: Expect,
}

#[derive(Debug, Clone)]
struct Region {
    slab: u64,
    key: u64,
    /// The Standard segments: address, size, content, readable.
    segments: Vec<(u64, usize, Vec<u8>, bool)>,
    failing_deallocs: usize,
}

#[derive(Debug, Default)]
struct Model {
    /// Live slabs: base to size.
    slabs: BTreeMap<u64, usize>,
    /// Live regions by key.
    regions: BTreeMap<u64, Region>,
    /// Bases and keys that were live once.
    gone_slabs: Vec<u64>,
    gone_keys: Vec<u64>,
    /// False once a raw call may have changed the map.
    trusted: bool,
}

struct Controller {
    steps: Vec<Step>,
    next: usize,
    model: Model,
    inbox: Vec<u8>,
    outbox: Vec<u8>,
    page_size: usize,
    symbols: BTreeMap<String, u64>,
    setup_seen: bool,
    in_flight: Option<InFlight>,
    seqno: u64,
    /// How the session must end, once a step ended it.
    ended: Option<&'static str>,
    checked: Checked,
}

impl Controller {
    fn new(steps: &[Step]) -> Self {
        Self {
            steps: steps.iter().take(MAX_STEPS).cloned().collect(),
            next: 0,
            model: Model {
                trusted: true,
                ..Model::default()
            },
            inbox: Vec::new(),
            outbox: Vec::new(),
            page_size: 0,
            symbols: BTreeMap::new(),
            setup_seen: false,
            in_flight: None,
            seqno: 0,
            ended: None,
            checked: Checked::default(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> usize {
        while self.outbox.is_empty() {
            self.read_replies();
            if self.ended.is_some() || self.next >= self.steps.len() {
                return 0;
            }
            let step = self.steps[self.next].clone();
            self.next += 1;
            self.send_step(&step);
        }
        let n = buf.len().min(self.outbox.len());
        buf[..n].copy_from_slice(&self.outbox[..n]);
        self.outbox.drain(..n);
        n
    }

    /// Consumes every whole message the executor wrote.
    fn read_replies(&mut self) {
        while self.inbox.len() >= HEADER_LEN {
            let head: [u8; HEADER_LEN] = self.inbox[..HEADER_LEN].try_into().expect("32 bytes");
            let header = Header::decode(&head).expect("the executor writes valid headers");
            let len = HEADER_LEN + header.payload_len();
            if self.inbox.len() < len {
                break;
            }
            let payload: Vec<u8> = self.inbox[HEADER_LEN..len].to_vec();
            self.inbox.drain(..len);
            self.message(&header, &payload);
        }
    }

    fn message(&mut self, header: &Header, payload: &[u8]) {
        match header.opcode() {
            Opcode::Setup => {
                assert!(!self.setup_seen, "a second Setup");
                self.setup_seen = true;
                type Setup<'a> = (
                    &'a str,
                    u64,
                    Seq<'a, (&'a str, &'a [u8])>,
                    Seq<'a, (&'a str, u64)>,
                );
                let (_, page_size, _, symbols) =
                    from_bytes::<Setup<'_>>(payload).expect("the Setup payload decodes");
                self.page_size = usize::try_from(page_size).expect("page size fits");
                assert!(self.page_size.is_power_of_two());
                self.symbols = symbols
                    .map(|(name, addr)| (name.to_owned(), addr))
                    .collect();
            }
            Opcode::Result => {
                let call = self
                    .in_flight
                    .take()
                    .expect("a Result with no call in flight");
                assert_eq!(header.seqno(), call.seqno, "a Result for another call");
                assert_eq!(header.tag(), 0, "a Result with a tag");
                self.check_reply(call, payload);
            }
            Opcode::Hangup => {
                assert!(
                    self.ended.is_some(),
                    "the executor hung up on a well-formed stream"
                );
                let mut reader = Reader::new(payload);
                assert!(
                    matches!(reader.error(), Ok(Err(_))),
                    "a Hangup carries an Error"
                );
            }
            Opcode::CallWrapper => panic!("the executor called the controller"),
        }
    }

    fn check_reply(&mut self, call: InFlight, payload: &[u8]) {
        let trusted = self.model.trusted;
        if trusted && !matches!(call.expect, Expect::Any) {
            self.checked.predicted += 1;
        }
        match call.expect {
            Expect::Any => {}
            Expect::Slab { valid, size } => {
                let got = expected_addr(payload);
                if let Ok(base) = got {
                    self.new_slab(base, size);
                }
                if trusted {
                    assert_eq!(got.is_ok(), valid, "reserve of {size:#x}: {got:?}");
                }
            }
            Expect::Key(region) => {
                let got = expected_addr(payload);
                if trusted {
                    match (&region, &got) {
                        (Some(region), Ok(key)) => assert_eq!(*key, region.key, "initialize key"),
                        (None, Err(_)) => {}
                        _ => panic!("initialize: expected {region:x?}, got {got:?}"),
                    }
                }
                if let (Some(region), Ok(_)) = (region, got) {
                    self.checked.regions += usize::from(trusted);
                    self.model.regions.insert(region.key, region);
                }
            }
            Expect::Batch(failing) => {
                let mut reader = Reader::new(payload);
                let got = reader.error().expect("an Error reply");
                reader.finish().expect("nothing after the reply");
                if trusted {
                    match got {
                        Ok(()) => assert!(failing.is_empty(), "entries {failing:?} must fail"),
                        Err(message) => {
                            let message = String::from_utf8_lossy(message);
                            assert!(!failing.is_empty(), "unexpected failure: {message}");
                            // The reply names the first failing entries and counts the rest.
                            let named: Vec<usize> = message
                                .split("(entry ")
                                .skip(1)
                                .filter_map(|rest| rest.split_once(')')?.0.parse().ok())
                                .collect();
                            for index in &named {
                                assert!(failing.contains(index), "entry {index}: {message}");
                            }
                            // A failing call that names no entry (an unknown tag).
                            let failing: &[usize] = match failing.as_slice() {
                                [NO_ENTRY] => &[],
                                entries => entries,
                            };
                            assert_eq!(
                                named.len(),
                                failing.len().min(SHOWN_FAILURES),
                                "failing entries {failing:?}: {message}"
                            );
                            if failing.len() > SHOWN_FAILURES {
                                let more = failing.len() - SHOWN_FAILURES;
                                assert!(
                                    message.contains(&format!("; and {more} more")),
                                    "failing entries {failing:?}: {message}"
                                );
                            }
                        }
                    }
                }
            }
            Expect::Buffers(want) => {
                if trusted {
                    let got = from_bytes::<Seq<'_, &[u8]>>(payload).expect("a Seq<Seq<u8>> reply");
                    let got: Vec<&[u8]> = got.collect();
                    let want: Vec<&[u8]> = want.iter().map(Vec::as_slice).collect();
                    assert_eq!(got, want, "bytes read back");
                    self.checked.read_backs += 1;
                }
            }
        }
    }

    /// Records a slab the executor reserved; addresses in it are no longer "gone".
    fn new_slab(&mut self, base: u64, size: usize) {
        assert_eq!(
            base % self.page_size as u64,
            0,
            "unaligned slab base {base:#x}"
        );
        let end = base + size as u64;
        let overlaps = self
            .model
            .slabs
            .iter()
            .any(|(&b, &s)| b < end && base < b + s as u64);
        assert!(
            !overlaps || !self.model.trusted,
            "slab {base:#x} overlaps a live slab"
        );
        self.model.slabs.insert(base, size);
        let outside = |addr: &u64| !(base..end).contains(addr);
        self.model.gone_slabs.retain(outside);
        self.model.gone_keys.retain(outside);
    }

    fn addr(&self, name: &str) -> u64 {
        *self
            .symbols
            .get(name)
            .unwrap_or_else(|| panic!("{name} not advertised"))
    }

    fn names(orc_rt: bool) -> [&'static str; 5] {
        if orc_rt {
            ORC_RT_NAMES
        } else {
            LLVM_NAMES
        }
    }

    /// Queues a CallWrapper frame and remembers what its reply must be.
    fn call(&mut self, tag: u64, payload: &[u8], expect: Expect) {
        // A raw frame may have set any sequence number, u64::MAX too.
        self.seqno = self.seqno.wrapping_add(1);
        let header =
            Header::new(Opcode::CallWrapper, self.seqno, tag, payload.len()).expect("fits");
        self.outbox.extend_from_slice(&header.to_bytes());
        self.outbox.extend_from_slice(payload);
        self.in_flight = Some(InFlight {
            seqno: self.seqno,
            expect,
        });
    }

    fn send_step(&mut self, step: &Step) {
        match *step {
            Step::Reserve { pages, odd, orc_rt } => {
                let size = usize::from(pages % 9) * self.page_size + usize::from(odd % 4 / 3);
                let names = Self::names(orc_rt);
                let args = encode(|w| {
                    w.addr(self.addr(names[4]))?;
                    w.usize(size)
                });
                let valid = size > 0 && size.is_multiple_of(self.page_size);
                self.call(self.addr(names[0]), &args, Expect::Slab { valid, size });
            }
            Step::Initialize {
                slab,
                ref segments,
                ref pairs,
                orc_rt,
            } => self.initialize(slab, segments, pairs, orc_rt),
            Step::Deinitialize { ref keys, orc_rt } => self.deinitialize(keys, orc_rt),
            Step::Release { ref bases, orc_rt } => self.release(bases, orc_rt),
            Step::ReadBack { region } => self.read_back(region),
            Step::RawCall {
                rare,
                wrapper,
                ref payload,
            } => {
                // The first 8 of RAW_WRAPPERS are the memory manager's.
                let wrappers = if rare < 16 {
                    &RAW_WRAPPERS[..]
                } else {
                    &RAW_WRAPPERS[8..]
                };
                let name = wrappers[usize::from(wrapper) % wrappers.len()];
                let tag = self.addr(name);
                if self.safe_call(tag, payload) {
                    self.untrust_if_memory(tag);
                    self.call(tag, payload, Expect::Any);
                }
            }
            Step::RawFrame { rare, .. } if rare >= 16 => {}
            Step::RawFrame {
                rare: _,
                opcode,
                seqno,
                tag,
                size_delta,
                ref payload,
            } => self.raw_frame(opcode, seqno, tag, size_delta, payload),
        }
    }

    /// Whether sending `payload` to `tag` can only act on the map: no dangerous wrapper, and
    /// an initialize whose actions name nothing foreign above [`UNMAPPED_BELOW`].
    fn safe_call(&self, tag: u64, payload: &[u8]) -> bool {
        let known = |addr: u64| self.symbols.values().any(|&a| a == addr);
        if known(tag) && !RAW_WRAPPERS.iter().any(|name| self.addr(name) == tag) {
            return false;
        }
        let initialize = [LLVM_NAMES[1], ORC_RT_NAMES[1]].map(|name| self.addr(name));
        if !initialize.contains(&tag) {
            return true;
        }
        let Ok(args) = InitializeArgs::decode(payload, |stored| Action::new(refuse, stored)) else {
            return true;
        };
        let safe = args
            .actions
            .iter()
            .flat_map(|pair| [&pair.finalize, &pair.dealloc])
            .flatten()
            .filter_map(|action| mapcore_sps::split_wire_action(action.args()))
            .all(|(func, _)| func < UNMAPPED_BELOW || known(func));
        safe
    }

    /// A raw call to a memory-manager wrapper may change the map in ways the model does not
    /// follow (a batch that fails may still have removed entries): from then on the model
    /// only checks the shape of replies.
    fn untrust_if_memory(&mut self, tag: u64) {
        let memory = LLVM_NAMES[..4].iter().chain(&ORC_RT_NAMES[..4]);
        if memory.map(|name| self.addr(name)).any(|addr| addr == tag) {
            self.model.trusted = false;
        }
    }

    fn raw_frame(&mut self, opcode: u64, seqno: u64, tag: u64, size_delta: i8, payload: &[u8]) {
        let opcode = opcode % 5;
        let is_call = opcode == Opcode::CallWrapper.to_u64();
        // A call's size field is never short: a short one would serve the call on a cut
        // payload that was never checked to be safe.
        let delta = if is_call {
            i64::from(size_delta % 3).abs()
        } else {
            i64::from(size_delta % 3)
        };
        let size = (HEADER_LEN + payload.len()) as i64 + delta;
        if is_call && delta == 0 {
            if !self.safe_call(tag, payload) {
                return;
            }
            self.untrust_if_memory(tag);
            self.seqno = seqno;
            let header = Header::new(Opcode::CallWrapper, seqno, tag, payload.len()).expect("fits");
            self.outbox.extend_from_slice(&header.to_bytes());
            self.outbox.extend_from_slice(payload);
            // An unknown tag gets an Error naming no entry, and changes nothing.
            let known = self.symbols.values().any(|&a| a == tag);
            let expect = if known {
                Expect::Any
            } else {
                Expect::Batch(vec![NO_ENTRY])
            };
            self.in_flight = Some(InFlight { seqno, expect });
            return;
        }
        // Anything else ends the session: a Hangup from the controller (the bytes after its
        // size are never read), or a broken stream: an unexpected opcode, a bad header, a
        // message cut short by the end of the stream.
        let mut head = [0u8; HEADER_LEN];
        head[..8].copy_from_slice(&size.max(0).to_le_bytes());
        head[8..16].copy_from_slice(&opcode.to_le_bytes());
        head[16..24].copy_from_slice(&seqno.to_le_bytes());
        head[24..].copy_from_slice(&tag.to_le_bytes());
        self.outbox.extend_from_slice(&head);
        self.outbox.extend_from_slice(payload);
        let hangup = opcode == Opcode::Hangup.to_u64() && delta <= 0 && size >= HEADER_LEN as i64;
        self.ended = Some(if hangup { "hangup" } else { "broken" });
    }

    fn initialize(
        &mut self,
        slab: u8,
        specs: &[SegmentSpec],
        pairs: &[(u8, ActionSpec, ActionSpec)],
        orc_rt: bool,
    ) {
        let page = self.page_size;
        let live: Vec<(u64, usize)> = self.model.slabs.iter().map(|(&b, &s)| (b, s)).collect();
        let base = match live.get(usize::from(slab) % (live.len() + 1)) {
            Some(&(base, _)) => base,
            None => match self
                .model
                .gone_slabs
                .get(usize::from(slab) % (self.model.gone_slabs.len() + 1))
            {
                Some(&base) => base,
                None => 0x1000 * page as u64,
            },
        };
        let mut valid = specs.len() <= MAX_SEGMENTS && pairs.len() <= MAX_ACTION_PAIRS;
        let mut segments = Vec::new();
        let mut pages_used: Vec<(u64, u64)> = Vec::new();
        let mut key: Option<u64> = None;
        // Segments follow each other, a page apart now and then, unless `page` asks for a
        // page of its own choice (which may overlap or leave the slab).
        let mut next = base;
        for spec in specs.iter().take(MAX_SEGMENTS + 1) {
            let pages = usize::from(spec.pages % 3) + 1;
            let size = (pages * page - usize::from(spec.trim) % page).max(1);
            let aligned = match spec.page {
                0..=0xbf => next + u64::from(spec.page % 3 == 0) * page as u64,
                _ => base + (usize::from(spec.page) % (MAX_SLAB_PAGES + 1) * page) as u64,
            };
            let addr = aligned + u64::from(spec.misalign == 0xff);
            next = aligned + size.div_ceil(page) as u64 * page as u64;
            // Mostly the groups compilers use; now and then any byte (W+X among them).
            let group = match spec.group % 8 {
                0 | 1 => 0x03,
                2 | 3 => 0x05,
                4 => 0x01,
                5 => 0x0b,
                6 => 0x00,
                _ => spec.group % 16,
            };
            let content_len = usize::from(spec.content_len) % (size + 2);
            let content = vec![spec.fill; content_len];
            let start = addr;
            let end = addr + size.div_ceil(page) as u64 * page as u64;
            let write_exec = group & 6 == 6;
            valid &= spec.misalign != 0xff
                && content_len <= size
                && !write_exec
                && !pages_used.iter().any(|&(s, e)| s < end && start < e)
                && !self.model.regions.values().any(|r| {
                    r.segments.iter().any(|&(a, sz, _, _)| {
                        a < end && start < a + sz.div_ceil(page) as u64 * page as u64
                    })
                });
            pages_used.push((start, end));
            let finalize_lifetime = group & 8 != 0;
            if !finalize_lifetime {
                key = Some(key.map_or(addr, |k| k.min(addr)));
            }
            segments.push((
                group,
                addr,
                size,
                content,
                group & 1 != 0,
                finalize_lifetime,
            ));
        }
        // The slab is the one holding the lowest segment; every segment must lie in it.
        let lowest = pages_used.iter().map(|&(start, _)| start).min();
        let slab = lowest.and_then(|low| {
            self.model
                .slabs
                .iter()
                .find(|(&b, &s)| (b..b + s as u64).contains(&low))
        });
        valid &= slab.is_some_and(|(&b, &s)| {
            pages_used
                .iter()
                .all(|&(start, end)| b <= start && end <= b + s as u64)
        });
        valid &= key.is_some();
        let slab_base = slab.map_or(0, |(&b, _)| b);
        let pairs: Vec<(ActionSpec, ActionSpec)> = pairs
            .iter()
            .take(MAX_ACTION_PAIRS + 1)
            .map(|&(n, f, d)| (if n < 32 { f } else { ActionSpec::None }, d))
            .collect();
        let mut failing_deallocs = 0;
        for (finalize, dealloc) in &pairs {
            valid &= matches!(finalize, ActionSpec::None);
            failing_deallocs += usize::from(!matches!(dealloc, ActionSpec::None));
        }
        let actions: Vec<[(u64, Vec<u8>); 2]> = pairs
            .iter()
            .map(|(f, d)| [self.action(*f), self.action(*d)])
            .collect();
        let names = Self::names(orc_rt);
        let args = encode(|w| {
            w.addr(self.addr(names[4]))?;
            w.count(segments.len())?;
            for (group, addr, size, content, _, _) in &segments {
                w.u8(*group)?;
                w.addr(*addr)?;
                w.usize(*size)?;
                w.char_seq(content)?;
            }
            w.count(actions.len())?;
            for pair in &actions {
                for (func, args) in pair {
                    w.addr(*func)?;
                    w.char_seq(args)?;
                }
            }
            Ok(())
        });
        let key = key.unwrap_or(0);
        let region = Region {
            slab: slab_base,
            key,
            segments: segments
                .into_iter()
                .filter(|s| !s.5)
                .map(|(_, addr, size, content, readable, _)| (addr, size, content, readable))
                .collect(),
            failing_deallocs,
        };
        self.call(
            self.addr(names[1]),
            &args,
            Expect::Key(valid.then_some(region)),
        );
    }

    fn action(&self, spec: ActionSpec) -> (u64, Vec<u8>) {
        let garbage = |n: u8| {
            let start = 0x10u64 + u64::from(n);
            let mut range = start.to_le_bytes().to_vec();
            range.extend_from_slice(&(start + 16).to_le_bytes());
            range
        };
        match spec {
            ActionSpec::None => (0, Vec::new()),
            ActionSpec::Unmapped(addr) => (u64::from(addr).max(1), vec![1, 2, 3]),
            ActionSpec::NotAnAction => (self.addr(LLVM_NAMES[0]), Vec::new()),
            ActionSpec::RegisterGarbage(n) => (self.addr(REGISTER_EH), garbage(n)),
            ActionSpec::DeregisterUnknown(n) => (self.addr(DEREGISTER_EH), garbage(n)),
        }
    }

    fn target(&self, target: Target, live: &[u64], gone: &[u64]) -> u64 {
        let pick = |list: &[u64], n: u8| list.get(usize::from(n) % list.len().max(1)).copied();
        match target {
            Target::Live(n) => pick(live, n).unwrap_or(0x10),
            Target::Gone(n) => pick(gone, n).unwrap_or(0x20),
            Target::Interior(n, delta) => pick(live, n).unwrap_or(0x30) + u64::from(delta).max(1),
            Target::Raw(addr) => addr,
        }
    }

    fn deinitialize(&mut self, targets: &[Target], orc_rt: bool) {
        let live: Vec<u64> = self.model.regions.keys().copied().collect();
        let keys: Vec<u64> = targets
            .iter()
            .map(|&t| self.target(t, &live, &self.model.gone_keys))
            .collect();
        // Back to front: each live key once; anything else fails.
        let mut failing = Vec::new();
        for (index, key) in keys.iter().enumerate().rev() {
            match self.model.regions.remove(key) {
                Some(region) => {
                    self.model.gone_keys.push(*key);
                    if region.failing_deallocs > 0 {
                        failing.push(index);
                    }
                }
                None => failing.push(index),
            }
        }
        let names = Self::names(orc_rt);
        let args = encode(|w| {
            w.addr(self.addr(names[4]))?;
            w.write(&keys[..])
        });
        self.call(self.addr(names[2]), &args, Expect::Batch(failing));
    }

    fn release(&mut self, targets: &[Target], orc_rt: bool) {
        let live: Vec<u64> = self.model.slabs.keys().copied().collect();
        let bases: Vec<u64> = targets
            .iter()
            .map(|&t| self.target(t, &live, &self.model.gone_slabs))
            .collect();
        let mut failing = Vec::new();
        for (index, base) in bases.iter().enumerate().rev() {
            if self.model.slabs.remove(base).is_none() {
                failing.push(index);
                continue;
            }
            self.model.gone_slabs.push(*base);
            let keys: Vec<u64> = self
                .model
                .regions
                .values()
                .filter(|r| r.slab == *base)
                .map(|r| r.key)
                .collect();
            let mut dealloc_failed = false;
            for key in keys {
                if let Some(region) = self.model.regions.remove(&key) {
                    dealloc_failed |= region.failing_deallocs > 0;
                    self.model.gone_keys.push(key);
                }
            }
            if dealloc_failed {
                failing.push(index);
            }
        }
        let names = Self::names(orc_rt);
        let args = encode(|w| {
            w.addr(self.addr(names[4]))?;
            w.write(&bases[..])
        });
        self.call(self.addr(names[3]), &args, Expect::Batch(failing));
    }

    fn read_back(&mut self, region: u8) {
        let regions: Vec<&Region> = self.model.regions.values().collect();
        let Some(region) = regions.get(usize::from(region) % regions.len().max(1)) else {
            return;
        };
        let readable: Vec<&(u64, usize, Vec<u8>, bool)> =
            region.segments.iter().filter(|s| s.3).collect();
        let ranges: Vec<(u64, u64)> = readable.iter().map(|s| (s.0, s.0 + s.1 as u64)).collect();
        let want: Vec<Vec<u8>> = readable
            .iter()
            .map(|s| {
                let mut bytes = s.2.clone();
                bytes.resize(s.1, 0);
                bytes
            })
            .collect();
        let args = encode(|w| w.write(&ranges[..]));
        self.call(self.addr(READ_BUFFERS), &args, Expect::Buffers(want));
    }
}

/// An `Expected<Addr>` reply: the address, or the message.
fn expected_addr(payload: &[u8]) -> Result<u64, String> {
    let mut reader = Reader::new(payload);
    let got = reader.expected::<u64>().expect("an Expected<Addr> reply");
    reader.finish().expect("nothing after the reply");
    got.map_err(|message| String::from_utf8_lossy(message).into_owned())
}

fn refuse(_: &[u8]) -> Result<(), ActionError> {
    Err(ActionError::new(-1))
}

/// SPS bytes written by `write` into a growing buffer.
fn encode(write: impl Fn(&mut Writer<'_>) -> Result<(), mapcore_sps::BufferTooSmall>) -> Vec<u8> {
    let mut capacity = 256;
    loop {
        let mut buf = vec![0u8; capacity];
        let mut writer = Writer::new(&mut buf);
        if write(&mut writer).is_ok() {
            let len = writer.finish();
            buf.truncate(len);
            return buf;
        }
        capacity *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(page: u8, group: u8, content_len: u16) -> SegmentSpec {
        SegmentSpec {
            page,
            pages: 0,
            trim: 0,
            group,
            content_len,
            fill: 0xab,
            misalign: 0,
        }
    }

    /// Reserve, initialize RW and RX code with a failing dealloc action, read back, batch
    /// deinitialize with a repeated key, release: every reply predicted, on both hosts.
    #[test]
    fn a_directed_session_is_predicted() {
        for dual_mapped in [false, true] {
            let input = SessionInput {
                dual_mapped,
                steps: vec![
                    Step::Reserve {
                        pages: 4,
                        odd: 0,
                        orc_rt: false,
                    },
                    Step::Initialize {
                        slab: 0,
                        segments: vec![segment(1, 0, 100), segment(1, 2, 7)],
                        pairs: vec![(0xff, ActionSpec::None, ActionSpec::Unmapped(0x100))],
                        orc_rt: true,
                    },
                    Step::ReadBack { region: 0 },
                    Step::Deinitialize {
                        keys: vec![Target::Live(0), Target::Gone(0), Target::Live(0)],
                        orc_rt: false,
                    },
                    Step::Release {
                        bases: vec![Target::Live(0)],
                        orc_rt: true,
                    },
                ],
            };
            let checked = run_session(&input);
            assert_eq!(
                checked,
                Checked {
                    predicted: 5,
                    regions: 1,
                    read_backs: 1
                },
                "dual-mapped: {dual_mapped}"
            );
        }
    }
}
