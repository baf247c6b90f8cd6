//! The classic BPF programs the kernel runs on every frame before it reaches a speaker socket.
//!
//! A frame a program rejects is dropped inside the kernel, before it is copied or queued: this is
//! what keeps the speaker's CPU near zero while the node interface carries unrelated traffic. Both
//! programs also reject the host's own outgoing frames (a packet socket sees those too), so the
//! speaker never reads back its replies or the kernel's own ARP requests.
//!
//! Offsets are from the start of the Ethernet header: the sockets are `SOCK_RAW`, and a VLAN tag
//! the NIC stripped is not in the frame (the interface a tagged frame arrives on is the VLAN device).
//!
//! The programs are plain data ([`Instruction`]) so the tests can run them against frames built by
//! [`crate::packet`] with a small interpreter, without a kernel.

use socket2::SockFilter;

/// One classic BPF instruction (`struct sock_filter`): opcode, jump offsets if true / if false
/// (counted from the next instruction), and the constant operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// Instruction class, size and mode bits.
    pub code: u16,
    /// Instructions to skip when a jump's condition holds.
    pub jt: u8,
    /// Instructions to skip when it does not.
    pub jf: u8,
    /// The constant: an offset for loads, a value for jumps and returns.
    pub k: u32,
}

impl Instruction {
    const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Self {
        Self { code, jt, jf, k }
    }

    fn to_sock_filter(self) -> SockFilter {
        SockFilter::new(self.code, self.jt, self.jf, self.k)
    }
}

// Opcode bits from <linux/filter.h> / <linux/bpf_common.h>.
const BPF_LD: u16 = 0x00;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_H: u16 = 0x08;
const BPF_B: u16 = 0x10;
const BPF_ABS: u16 = 0x20;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_K: u16 = 0x00;

/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: an absolute load from this "offset" reads the frame's packet
/// type (host, broadcast, multicast, other host, outgoing) instead of frame bytes.
const PKTTYPE: u32 = 0xffff_f000 + 4;
/// `PACKET_OUTGOING`, the packet type of frames this host sends.
const PACKET_OUTGOING: u32 = 4;
/// Return value that keeps the whole frame (it is the number of bytes to keep).
const ACCEPT: u32 = u32::MAX;
/// Return value that drops the frame.
const DROP: u32 = 0;

/// Offset of the ethertype in an untagged Ethernet frame.
const ETHERTYPE_OFFSET: u32 = 12;
/// Offset of the IPv6 Next Header field: 14 (Ethernet) + 6.
const IPV6_NEXT_HEADER_OFFSET: u32 = 20;
/// Offset of the ICMPv6 type: 14 (Ethernet) + 40 (IPv6 header, no extension headers).
const ICMPV6_TYPE_OFFSET: u32 = 54;

/// The ARP socket's program. The socket is bound to ethertype 0x0806, so the kernel already hands
/// it nothing else; the program only drops what this host sends.
///
/// ```text
/// 0: ld   [pkttype]                 ; A = packet type
/// 1: jeq  #PACKET_OUTGOING, 3, 2    ; our own frame? drop it
/// 2: ret  #-1                       ; accept the whole frame
/// 3: ret  #0                        ; drop
/// ```
pub const ARP_PROGRAM: [Instruction; 4] = [
    Instruction::new(BPF_LD | BPF_W | BPF_ABS, 0, 0, PKTTYPE),
    Instruction::new(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, PACKET_OUTGOING),
    Instruction::new(BPF_RET | BPF_K, 0, 0, ACCEPT),
    Instruction::new(BPF_RET | BPF_K, 0, 0, DROP),
];

/// The NDP socket's program: incoming ICMPv6 Neighbor Solicitations (type 135) and Advertisements
/// (type 136) carried directly after the IPv6 header.
///
/// A message behind an extension header is dropped here, as [`crate::packet::parse`] would ignore
/// it anyway (Neighbor Discovery never needs one; MLD reports, which always carry a Hop-by-Hop
/// header, are the frequent case this keeps out). A frame too short for a load is dropped by the
/// kernel itself.
///
/// ```text
///  0: ld   [pkttype]                ; A = packet type
///  1: jeq  #PACKET_OUTGOING, 10, 2  ; our own frame? drop it
///  2: ldh  [12]                     ; A = ethertype
///  3: jeq  #0x86dd, 4, 10           ; not IPv6 (the bind says it is; cheap to be sure)? drop
///  4: ldb  [20]                     ; A = IPv6 next header
///  5: jeq  #58, 6, 10               ; not ICMPv6 right after the fixed header? drop
///  6: ldb  [54]                     ; A = ICMPv6 type
///  7: jge  #135, 8, 10              ; below Neighbor Solicitation? drop
///  8: jgt  #136, 10, 9              ; above Neighbor Advertisement? drop
///  9: ret  #-1                      ; NS or NA: accept the whole frame
/// 10: ret  #0                       ; drop
/// ```
pub const NDP_PROGRAM: [Instruction; 11] = [
    Instruction::new(BPF_LD | BPF_W | BPF_ABS, 0, 0, PKTTYPE),
    Instruction::new(BPF_JMP | BPF_JEQ | BPF_K, 8, 0, PACKET_OUTGOING),
    Instruction::new(BPF_LD | BPF_H | BPF_ABS, 0, 0, ETHERTYPE_OFFSET),
    Instruction::new(BPF_JMP | BPF_JEQ | BPF_K, 0, 6, 0x86dd),
    Instruction::new(BPF_LD | BPF_B | BPF_ABS, 0, 0, IPV6_NEXT_HEADER_OFFSET),
    Instruction::new(BPF_JMP | BPF_JEQ | BPF_K, 0, 4, 58),
    Instruction::new(BPF_LD | BPF_B | BPF_ABS, 0, 0, ICMPV6_TYPE_OFFSET),
    Instruction::new(BPF_JMP | BPF_JGE | BPF_K, 0, 2, 135),
    Instruction::new(BPF_JMP | BPF_JGT | BPF_K, 1, 0, 136),
    Instruction::new(BPF_RET | BPF_K, 0, 0, ACCEPT),
    Instruction::new(BPF_RET | BPF_K, 0, 0, DROP),
];

/// The program in the form `setsockopt(SO_ATTACH_FILTER)` takes.
pub(crate) fn to_sock_filters(program: &[Instruction]) -> Vec<SockFilter> {
    program.iter().map(|instruction| instruction.to_sock_filter()).collect()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::packet::{self, MacAddress, NdpSender};

    /// Packet types of `<linux/if_packet.h>`.
    const PACKET_HOST: u32 = 0;
    const PACKET_BROADCAST: u32 = 1;
    const PACKET_MULTICAST: u32 = 2;

    /// Runs the subset of classic BPF the programs use, the way the kernel does: a load past the
    /// end of the frame ends the program with 0 (drop).
    fn run(program: &[Instruction], frame: &[u8], pkttype: u32) -> u32 {
        let mut accumulator = 0_u32;
        let mut pc = 0_usize;
        loop {
            let instruction = program[pc];
            pc += 1;
            let class = instruction.code & 0x07;
            match class {
                BPF_LD => {
                    if instruction.k == PKTTYPE {
                        accumulator = pkttype;
                        continue;
                    }
                    let at = instruction.k as usize;
                    let size = match instruction.code & 0x18 {
                        BPF_W => 4,
                        BPF_H => 2,
                        BPF_B => 1,
                        other => panic!("load size {other:#x}"),
                    };
                    let Some(bytes) = frame.get(at..at + size) else { return 0 };
                    accumulator = bytes.iter().fold(0, |value, byte| value << 8 | u32::from(*byte));
                }
                BPF_JMP => {
                    let holds = match instruction.code & 0xf0 {
                        BPF_JEQ => accumulator == instruction.k,
                        BPF_JGT => accumulator > instruction.k,
                        BPF_JGE => accumulator >= instruction.k,
                        other => panic!("jump {other:#x}"),
                    };
                    pc += usize::from(if holds { instruction.jt } else { instruction.jf });
                }
                BPF_RET => return instruction.k,
                other => panic!("class {other:#x}"),
            }
        }
    }

    const OUR_MAC: MacAddress = MacAddress::new([0x02, 0x77, 0, 0, 0, 0x10]);
    const CLIENT_MAC: MacAddress = MacAddress::new([0x02, 0x77, 0, 0, 0, 0x02]);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0x10);
    const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2);

    fn solicitation() -> Vec<u8> {
        packet::dad_probe_ns(CLIENT_MAC, VIP6).to_vec()
    }

    fn advertisement() -> Vec<u8> {
        packet::neighbor_advertisement(
            NdpSender { mac: CLIENT_MAC, address: CLIENT6 },
            CLIENT6,
            OUR_MAC,
            VIP6,
            true,
            true,
        )
        .to_vec()
    }

    /// The solicitation with its ICMPv6 type changed: an echo request (128), a router
    /// solicitation (133), a redirect (137). The checksum no longer matters to a filter.
    fn with_icmpv6_type(message_type: u8) -> Vec<u8> {
        let mut frame = solicitation();
        frame[54] = message_type;
        frame
    }

    #[test]
    fn the_ndp_program_accepts_incoming_solicitations_and_advertisements() {
        assert_eq!(run(&NDP_PROGRAM, &solicitation(), PACKET_MULTICAST), ACCEPT);
        assert_eq!(run(&NDP_PROGRAM, &advertisement(), PACKET_HOST), ACCEPT);
    }

    #[test]
    fn the_ndp_program_drops_every_other_icmpv6_type() {
        for message_type in (0..=u8::MAX).filter(|message_type| !(135..=136).contains(message_type)) {
            assert_eq!(run(&NDP_PROGRAM, &with_icmpv6_type(message_type), PACKET_HOST), DROP, "type {message_type}");
        }
    }

    #[test]
    fn the_ndp_program_drops_what_this_host_sends() {
        assert_eq!(run(&NDP_PROGRAM, &advertisement(), PACKET_OUTGOING), DROP);
    }

    #[test]
    fn the_ndp_program_drops_icmpv6_behind_an_extension_header() {
        let mut frame = solicitation();
        frame[20] = 0; // Hop-by-Hop options, as an MLD report carries.
        assert_eq!(run(&NDP_PROGRAM, &frame, PACKET_MULTICAST), DROP);
    }

    #[test]
    fn the_ndp_program_drops_other_ethertypes_and_short_frames() {
        let arp = packet::arp_probe(CLIENT_MAC, Ipv4Addr::new(192, 168, 77, 10));
        assert_eq!(run(&NDP_PROGRAM, &arp, PACKET_BROADCAST), DROP);
        assert_eq!(run(&NDP_PROGRAM, &solicitation()[..54], PACKET_MULTICAST), DROP);
    }

    #[test]
    fn the_arp_program_accepts_incoming_and_drops_outgoing() {
        let request = packet::arp_probe(CLIENT_MAC, Ipv4Addr::new(192, 168, 77, 10));
        assert_eq!(run(&ARP_PROGRAM, &request, PACKET_BROADCAST), ACCEPT);
        assert_eq!(run(&ARP_PROGRAM, &request, PACKET_OUTGOING), DROP);
    }
}
