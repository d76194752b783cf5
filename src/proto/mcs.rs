//! MCS (T.125) and GCC (T.124) PDUs with the RDP user-data blocks (MS-RDPBCGR 2.2.1.3 to
//! 2.2.1.9), plus the clear-text structures carried in MCS Send Data for Standard RDP Security:
//! security header (2.2.8.1.1.2), licensing error (2.2.1.12), Share Control header (2.2.8.1.1.1)
//! and Set Error Info (2.2.5.1.1).
//!
//! Input is the user data of an X.224 Data TPDU. Connect-Initial / Connect-Response are BER
//! (T.125 §7, application tags 101 / 102) with a PER-encoded GCC Conference Create
//! Request / Response inside (T.124 §8.7); domain PDUs are PER ALIGNED with the CHOICE index in
//! the top 6 bits of the first byte.
//!
//! The GCC wrapper is not decoded field by field: like Wireshark and Zeek, the parser looks for
//! the H.221 key ("Duca" client, "McDn" server) and reads the PER length and the user-data
//! blocks after it.

use nom::bytes::complete::take;
use nom::number::complete::{be_u16, be_u8, le_u16, le_u32, u8 as take_u8};
use nom::IResult;
use serde::Serialize;

use super::ParseError;

/// Largest BER length accepted in a Connect PDU (the TPKT length already caps a PDU at 64 KiB).
pub const MAX_BER_LEN: usize = 0xFFFF;
/// Most static channel names read from CS_NET (the spec allows 31, MS-RDPBCGR 2.2.1.3.4).
pub const MAX_CHANNELS: usize = 64;
/// How far into the GCC blob the H.221 key is searched for (it sits at offset 19 / 21 in practice).
const H221_SEARCH_WINDOW: usize = 64;
/// PER offset of UserId (T.125 `UserId ::= DynamicChannelId`, INTEGER (1001..65535)).
const USER_ID_BASE: u16 = 1001;

/// User-data block types (MS-RDPBCGR 2.2.1.3.1 TS_UD_HEADER).
pub mod block_type {
    /// CS_CORE: Client Core Data.
    pub const CS_CORE: u16 = 0xC001;
    /// CS_SECURITY: Client Security Data.
    pub const CS_SECURITY: u16 = 0xC002;
    /// CS_NET: Client Network Data.
    pub const CS_NET: u16 = 0xC003;
    /// CS_CLUSTER: Client Cluster Data.
    pub const CS_CLUSTER: u16 = 0xC004;
    /// CS_MONITOR: Client Monitor Data.
    pub const CS_MONITOR: u16 = 0xC005;
    /// CS_MCS_MSGCHANNEL: Client Message Channel Data.
    pub const CS_MCS_MSGCHANNEL: u16 = 0xC006;
    /// CS_MONITOR_EX: Client Monitor Extended Data.
    pub const CS_MONITOR_EX: u16 = 0xC008;
    /// CS_MULTITRANSPORT: Client Multitransport Channel Data.
    pub const CS_MULTITRANSPORT: u16 = 0xC00A;
    /// SC_CORE: Server Core Data.
    pub const SC_CORE: u16 = 0x0C01;
    /// SC_SECURITY: Server Security Data.
    pub const SC_SECURITY: u16 = 0x0C02;
    /// SC_NET: Server Network Data.
    pub const SC_NET: u16 = 0x0C03;
    /// SC_MCS_MSGCHANNEL: Server Message Channel Data.
    pub const SC_MCS_MSGCHANNEL: u16 = 0x0C04;
    /// SC_MULTITRANSPORT: Server Multitransport Channel Data.
    pub const SC_MULTITRANSPORT: u16 = 0x0C08;
}

/// DomainMCSPDU CHOICE indexes (T.125 §7, MS-RDPBCGR 2.2.1.5 to 2.2.1.9, 2.2.2.3).
pub mod domain_pdu {
    /// erectDomainRequest.
    pub const ERECT_DOMAIN_REQUEST: u8 = 1;
    /// disconnectProviderUltimatum.
    pub const DISCONNECT_PROVIDER_ULTIMATUM: u8 = 8;
    /// attachUserRequest.
    pub const ATTACH_USER_REQUEST: u8 = 10;
    /// attachUserConfirm.
    pub const ATTACH_USER_CONFIRM: u8 = 11;
    /// channelJoinRequest.
    pub const CHANNEL_JOIN_REQUEST: u8 = 14;
    /// channelJoinConfirm.
    pub const CHANNEL_JOIN_CONFIRM: u8 = 15;
    /// sendDataRequest.
    pub const SEND_DATA_REQUEST: u8 = 25;
    /// sendDataIndication.
    pub const SEND_DATA_INDICATION: u8 = 26;
}

/// Client Core Data, leading fields (MS-RDPBCGR 2.2.1.3.2 TS_UD_CS_CORE).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientCore {
    /// RDP version (0x00080001 RDP 4.0, 0x00080004 RDP 5.0 to 8.1, 0x00080005 RDP 10.0, ...).
    pub version: u32,
    /// desktopWidth.
    pub desktop_width: u16,
    /// desktopHeight.
    pub desktop_height: u16,
    /// keyboardLayout (input locale identifier, e.g. 0x409).
    pub keyboard_layout: u32,
    /// clientBuild.
    pub client_build: u32,
    /// clientName (UTF-16LE, up to 15 characters).
    pub client_name: String,
    /// earlyCapabilityFlags (RNS_UD_CS_SUPPORT_ERRINFO_PDU 0x0001, ...), absent in old clients.
    pub early_capability_flags: Option<u16>,
    /// serverSelectedProtocol echoed by the client, absent in old clients.
    pub server_selected_protocol: Option<u32>,
}

/// Client Security Data (MS-RDPBCGR 2.2.1.3.3 TS_UD_CS_SEC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientSecurity {
    /// encryptionMethods (see [`super::codes::encryption_method_name`]).
    pub encryption_methods: u32,
    /// extEncryptionMethods (French locale only).
    pub ext_encryption_methods: u32,
}

/// MCS Connect-Initial with GCC Conference Create Request (MS-RDPBCGR 2.2.1.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConnectInitial {
    /// CS_CORE.
    pub client_core: Option<ClientCore>,
    /// CS_SECURITY.
    pub client_security: Option<ClientSecurity>,
    /// CS_NET static channel names (at most [`MAX_CHANNELS`]).
    pub channels: Vec<String>,
    /// CS_CLUSTER flags (REDIRECTION_SUPPORTED 0x01, ...).
    pub cluster_flags: Option<u32>,
    /// Types of all user-data blocks, in order.
    pub block_types: Vec<u16>,
}

/// Server Core Data (MS-RDPBCGR 2.2.1.4.2 TS_UD_SC_CORE).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerCore {
    /// RDP version of the server.
    pub version: u32,
    /// clientRequestedProtocols (echo of RDP_NEG_REQ), absent in old servers.
    pub client_requested_protocols: Option<u32>,
    /// earlyCapabilityFlags, absent in old servers.
    pub early_capability_flags: Option<u32>,
}

/// Kind of server certificate in SC_SECURITY (MS-RDPBCGR 2.2.1.4.3 serverCertificate, 2.2.1.4.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ServerCertificate {
    /// CERT_CHAIN_VERSION_1: Proprietary Certificate (2.2.1.4.3.1.1).
    Proprietary,
    /// CERT_CHAIN_VERSION_2: X.509 certificate chain with `count` certificates (2.2.1.4.3.1.2).
    X509 {
        /// NumCertBlobs.
        count: u32,
    },
}

/// Server Security Data (MS-RDPBCGR 2.2.1.4.3 TS_UD_SC_SEC1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerSecurity {
    /// encryptionMethod chosen by the server (0 under Enhanced RDP Security).
    pub encryption_method: u32,
    /// encryptionLevel (see [`super::codes::encryption_level_name`]).
    pub encryption_level: u32,
    /// serverRandomLen (32 when Standard RDP Security is used, else absent = 0).
    pub server_random_len: u32,
    /// serverCertificate kind, if present and of a known version.
    pub certificate: Option<ServerCertificate>,
    /// Whether the certificate is permanent (dwVersion top bit clear); false without a certificate.
    pub permanent: bool,
}

/// MCS Connect-Response with GCC Conference Create Response (MS-RDPBCGR 2.2.1.4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConnectResponse {
    /// MCS result (see [`super::codes::mcs_result_name`]); 0 = rt-successful.
    pub result: u8,
    /// SC_CORE.
    pub server_core: Option<ServerCore>,
    /// SC_SECURITY.
    pub server_security: Option<ServerSecurity>,
    /// SC_NET MCSChannelId (the I/O channel).
    pub io_channel: Option<u16>,
    /// SC_NET channelIdArray (one per requested static channel).
    pub channel_ids: Vec<u16>,
    /// Types of all user-data blocks, in order.
    pub block_types: Vec<u16>,
}

/// An MCS PDU (T.125 §7; MS-RDPBCGR 2.2.1.3 to 2.2.1.9, 2.2.2.3, 2.2.8.1.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum McsPdu<'a> {
    /// Connect-Initial (BER `7f 65`).
    ConnectInitial(ConnectInitial),
    /// Connect-Response (BER `7f 66`).
    ConnectResponse(ConnectResponse),
    /// Erect Domain Request (2.2.1.5).
    ErectDomainRequest,
    /// Attach User Request (2.2.1.6).
    AttachUserRequest,
    /// Attach User Confirm (2.2.1.7): result and the user channel id when present.
    AttachUserConfirm {
        /// MCS result.
        result: u8,
        /// initiator (user channel id).
        initiator: Option<u16>,
    },
    /// Channel Join Request (2.2.1.8).
    ChannelJoinRequest {
        /// User channel id.
        initiator: u16,
        /// Requested channel.
        channel_id: u16,
    },
    /// Channel Join Confirm (2.2.1.9): result and the joined channel when present.
    ChannelJoinConfirm {
        /// MCS result.
        result: u8,
        /// channelId (absent when the join failed).
        channel_id: Option<u16>,
    },
    /// Disconnect Provider Ultimatum (2.2.2.3) with its reason (see [`super::codes::mcs_reason_name`]).
    DisconnectProviderUltimatum {
        /// T.125 Reason.
        reason: u8,
    },
    /// Send Data Request (client to server).
    SendDataRequest {
        /// User channel id.
        initiator: u16,
        /// Channel.
        channel_id: u16,
        /// userData (may be shorter than announced if the input was cut).
        user_data: &'a [u8],
    },
    /// Send Data Indication (server to client).
    SendDataIndication {
        /// User channel id.
        initiator: u16,
        /// Channel.
        channel_id: u16,
        /// userData (may be shorter than announced if the input was cut).
        user_data: &'a [u8],
    },
    /// Any other DomainMCSPDU (its CHOICE index), or a BER connect PDU with another application tag
    /// (the tag byte after `7f`, e.g. 0x67 Connect-Additional).
    Other(u8),
}

fn err(what: &'static str) -> impl Fn(nom::Err<nom::error::Error<&[u8]>>) -> ParseError {
    move |_| ParseError::new(what, "truncated or malformed")
}

/// Parses one MCS PDU from X.224 Data user data (T.125 §7; MS-RDPBCGR 2.2.1.3 to 2.2.1.9, 2.2.2.3).
pub fn parse_mcs(i: &[u8]) -> Result<McsPdu<'_>, ParseError> {
    let first = *i
        .first()
        .ok_or_else(|| ParseError::new("mcs pdu", "empty"))?;
    if first == 0x7F {
        return match i.get(1) {
            Some(0x65) => parse_connect_initial(i).map(McsPdu::ConnectInitial),
            Some(0x66) => parse_connect_response(i).map(McsPdu::ConnectResponse),
            Some(other) => Ok(McsPdu::Other(*other)),
            None => Err(ParseError::new("mcs connect pdu", "truncated tag")),
        };
    }
    let choice = first >> 2;
    let rest = i.get(1..).unwrap_or_default();
    use domain_pdu as d;
    match choice {
        d::ERECT_DOMAIN_REQUEST => Ok(McsPdu::ErectDomainRequest),
        d::ATTACH_USER_REQUEST => Ok(McsPdu::AttachUserRequest),
        d::DISCONNECT_PROVIDER_ULTIMATUM => {
            // Reason (3-bit PER enumerated) straddles bytes 0 and 1: bits 1-0 of byte 0, bit 7 of byte 1.
            let b1 = rest.first().ok_or_else(|| {
                ParseError::new("mcs disconnect provider ultimatum", "missing reason byte")
            })?;
            Ok(McsPdu::DisconnectProviderUltimatum {
                reason: ((first & 0x03) << 1) | (b1 >> 7),
            })
        }
        d::ATTACH_USER_CONFIRM => {
            let (r, result) = be_u8(rest).map_err(err("mcs attach user confirm"))?;
            let initiator = if first & 0x02 != 0 {
                be_u16::<_, ()>(r).ok().and_then(|(_, v)| user_id(v))
            } else {
                None
            };
            Ok(McsPdu::AttachUserConfirm { result, initiator })
        }
        d::CHANNEL_JOIN_REQUEST => {
            let (_, (initiator, channel_id)) =
                user_and_channel(rest).map_err(err("mcs channel join request"))?;
            Ok(McsPdu::ChannelJoinRequest {
                initiator,
                channel_id,
            })
        }
        d::CHANNEL_JOIN_CONFIRM => {
            let (r, result) = be_u8(rest).map_err(err("mcs channel join confirm"))?;
            let (r, _initiator) = be_u16(r).map_err(err("mcs channel join confirm"))?;
            let (r, _requested) = be_u16(r).map_err(err("mcs channel join confirm"))?;
            let channel_id = if first & 0x02 != 0 {
                be_u16::<_, ()>(r).ok().map(|(_, v)| v)
            } else {
                None
            };
            Ok(McsPdu::ChannelJoinConfirm { result, channel_id })
        }
        d::SEND_DATA_REQUEST | d::SEND_DATA_INDICATION => {
            let (initiator, channel_id, user_data) = parse_send_data(rest)?;
            Ok(if choice == d::SEND_DATA_REQUEST {
                McsPdu::SendDataRequest {
                    initiator,
                    channel_id,
                    user_data,
                }
            } else {
                McsPdu::SendDataIndication {
                    initiator,
                    channel_id,
                    user_data,
                }
            })
        }
        other => Ok(McsPdu::Other(other)),
    }
}

/// UserId = raw PER value + 1001, `None` if that overflows 16 bits.
fn user_id(raw: u16) -> Option<u16> {
    raw.checked_add(USER_ID_BASE)
}

/// initiator (UserId) and channelId (T.125 ChannelJoinRequest / SendData fields).
fn user_and_channel(i: &[u8]) -> IResult<&[u8], (u16, u16)> {
    let (i, raw) = be_u16(i)?;
    let (i, channel) = be_u16(i)?;
    let initiator = user_id(raw).ok_or(nom::Err::Error(nom::error::Error::new(
        i,
        nom::error::ErrorKind::Verify,
    )))?;
    Ok((i, (initiator, channel)))
}

/// PER length determinant (X.691 §10.9): 1 byte below 0x80, else 14 bits over 2 bytes.
fn per_length(i: &[u8]) -> IResult<&[u8], usize> {
    let (i, b0) = take_u8(i)?;
    if b0 & 0x80 == 0 {
        return Ok((i, usize::from(b0)));
    }
    if b0 & 0x40 != 0 {
        // Fragmented form: not used by RDP.
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::LengthValue,
        )));
    }
    let (i, b1) = take_u8(i)?;
    Ok((i, usize::from(b0 & 0x3F) << 8 | usize::from(b1)))
}

/// Send Data Request / Indication body after the first byte (T.125 SendDataRequest; MS-RDPBCGR
/// 2.2.8.1.1.1.1): initiator, channelId, dataPriority+segmentation byte, PER length, userData.
/// A length beyond the input returns the bytes that are there.
fn parse_send_data(i: &[u8]) -> Result<(u16, u16, &[u8]), ParseError> {
    let what = "mcs send data";
    let (i, (initiator, channel_id)) = user_and_channel(i).map_err(err(what))?;
    let (i, _priority_segmentation) = be_u8(i).map_err(err(what))?;
    let (i, len) = per_length(i).map_err(err(what))?;
    let user_data = i.get(..len).unwrap_or(i);
    Ok((initiator, channel_id, user_data))
}

/// BER length (X.690 §8.1.3): short form, or long form with at most 4 length bytes and a value
/// of at most [`MAX_BER_LEN`].
fn ber_length(i: &[u8]) -> IResult<&[u8], usize> {
    let (i, b0) = take_u8(i)?;
    if b0 < 0x80 {
        return Ok((i, usize::from(b0)));
    }
    let n = usize::from(b0 & 0x7F);
    if n == 0 || n > 4 {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::LengthValue,
        )));
    }
    let (i, bytes) = take(n)(i)?;
    let len = bytes
        .iter()
        .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
    if len > MAX_BER_LEN {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::TooLarge,
        )));
    }
    Ok((i, len))
}

/// One BER TLV with a single-byte tag: (tag, contents).
fn ber_tlv(i: &[u8]) -> IResult<&[u8], (u8, &[u8])> {
    let (i, tag) = take_u8(i)?;
    let (i, len) = ber_length(i)?;
    let (i, value) = take(len)(i)?;
    Ok((i, (tag, value)))
}

/// The contents of a Connect PDU: `7f 65|66`, BER length, contents (exact length required).
fn connect_contents<'a>(i: &'a [u8], what: &'static str) -> Result<&'a [u8], ParseError> {
    let body = i.get(2..).unwrap_or_default();
    let (rest, len) = ber_length(body).map_err(|_| ParseError::new(what, "bad ber length"))?;
    rest.get(..len).ok_or_else(|| {
        ParseError::new(
            what,
            format!("ber length {len} exceeds the {} bytes present", rest.len()),
        )
    })
}

/// Collects the TLVs of a BER SEQUENCE body.
fn tlvs<'a>(mut i: &'a [u8], what: &'static str) -> Result<Vec<(u8, &'a [u8])>, ParseError> {
    let mut out = Vec::new();
    while !i.is_empty() {
        let (rest, tlv) = ber_tlv(i).map_err(|_| ParseError::new(what, "truncated ber element"))?;
        out.push(tlv);
        i = rest;
        if out.len() > 16 {
            return Err(ParseError::new(what, "too many ber elements"));
        }
    }
    Ok(out)
}

/// The user-data blocks inside a GCC Conference Create Request / Response: after the H.221 key
/// `key` comes a PER length and the blocks (T.124 §8.7 UserData; MS-RDPBCGR 2.2.1.3.1).
fn gcc_blocks<'a>(gcc: &'a [u8], key: &[u8; 4]) -> Option<&'a [u8]> {
    let window = gcc.get(..gcc.len().min(H221_SEARCH_WINDOW)).unwrap_or(gcc);
    let pos = window.windows(4).position(|w| w == key)?;
    let after = gcc.get(pos.checked_add(4)?..)?;
    let (rest, len) = per_length(after).ok()?;
    Some(rest.get(..len).unwrap_or(rest))
}

/// Splits user-data blocks (TS_UD_HEADER: type u16, length u16 including the header); stops at the
/// first block whose length is below 4 or beyond the data.
fn split_blocks(mut i: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let Ok((_, (t, len))) = block_header(i) {
        let Some(block) = (len >= 4).then(|| i.get(..len)).flatten() else {
            break;
        };
        out.push((t, block.get(4..).unwrap_or_default()));
        i = i.get(len..).unwrap_or_default();
    }
    out
}

fn block_header(i: &[u8]) -> IResult<&[u8], (u16, usize)> {
    let (i, t) = le_u16(i)?;
    let (i, len) = le_u16(i)?;
    Ok((i, (t, usize::from(len))))
}

/// MCS Connect-Initial (MS-RDPBCGR 2.2.1.3; T.125 Connect-Initial): the last element is userData.
fn parse_connect_initial(i: &[u8]) -> Result<ConnectInitial, ParseError> {
    const WHAT: &str = "mcs connect-initial";
    let contents = connect_contents(i, WHAT)?;
    let elems = tlvs(contents, WHAT)?;
    let user_data = match elems.last() {
        Some((0x04, v)) => *v,
        _ => return Err(ParseError::new(WHAT, "no userData octet string")),
    };
    let mut ci = ConnectInitial::default();
    let Some(blocks) = gcc_blocks(user_data, b"Duca") else {
        return Err(ParseError::new(
            WHAT,
            "no gcc conference create request (h.221 key \"Duca\")",
        ));
    };
    for (t, body) in split_blocks(blocks) {
        ci.block_types.push(t);
        match t {
            block_type::CS_CORE => ci.client_core = parse_client_core(body),
            block_type::CS_SECURITY => {
                ci.client_security = le_u32::<_, ()>(body).ok().map(|(r, m)| ClientSecurity {
                    encryption_methods: m,
                    ext_encryption_methods: le_u32::<_, ()>(r).map(|(_, e)| e).unwrap_or(0),
                });
            }
            block_type::CS_NET => ci.channels = parse_client_net(body),
            block_type::CS_CLUSTER => ci.cluster_flags = le_u32::<_, ()>(body).ok().map(|(_, f)| f),
            _ => {}
        }
    }
    Ok(ci)
}

/// Decodes a NUL-terminated UTF-16LE string.
fn utf16z(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| {
            u16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// TS_UD_CS_CORE (MS-RDPBCGR 2.2.1.3.2): needs the fields up to clientName (52 bytes of body);
/// earlyCapabilityFlags sits at body offset 140, serverSelectedProtocol at 208.
fn parse_client_core(b: &[u8]) -> Option<ClientCore> {
    /// version, desktopWidth, desktopHeight, keyboardLayout, clientBuild, clientName bytes.
    type Fixed<'a> = (u32, u16, u16, u32, u32, &'a [u8]);
    fn fixed(i: &[u8]) -> IResult<&[u8], Fixed<'_>> {
        let (i, version) = le_u32(i)?;
        let (i, w) = le_u16(i)?;
        let (i, h) = le_u16(i)?;
        let (i, _color_depth_and_sas) = take(4usize)(i)?;
        let (i, kbd) = le_u32(i)?;
        let (i, build) = le_u32(i)?;
        let (i, name) = take(32usize)(i)?;
        Ok((i, (version, w, h, kbd, build, name)))
    }
    let (_, (version, desktop_width, desktop_height, keyboard_layout, client_build, name)) =
        fixed(b).ok()?;
    let u16_at = |o: usize| {
        b.get(o..o.checked_add(2)?)
            .and_then(|s| s.try_into().ok())
            .map(u16::from_le_bytes)
    };
    let u32_at = |o: usize| {
        b.get(o..o.checked_add(4)?)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_le_bytes)
    };
    Some(ClientCore {
        version,
        desktop_width,
        desktop_height,
        keyboard_layout,
        client_build,
        client_name: utf16z(name),
        early_capability_flags: u16_at(140),
        server_selected_protocol: u32_at(208),
    })
}

/// TS_UD_CS_NET (MS-RDPBCGR 2.2.1.3.4): channelCount then 12-byte CHANNEL_DEF (8-byte ANSI name, options).
fn parse_client_net(b: &[u8]) -> Vec<String> {
    let Ok((defs, count)) = le_u32::<_, ()>(b) else {
        return Vec::new();
    };
    let count = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(MAX_CHANNELS);
    defs.chunks_exact(12)
        .take(count)
        .map(|d| {
            let name = d.get(..8).unwrap_or_default();
            let end = name.iter().position(|c| *c == 0).unwrap_or(name.len());
            String::from_utf8_lossy(name.get(..end).unwrap_or_default()).into_owned()
        })
        .collect()
}

/// MCS Connect-Response (MS-RDPBCGR 2.2.1.4; T.125 Connect-Response): result ENUMERATED first,
/// userData OCTET STRING last.
fn parse_connect_response(i: &[u8]) -> Result<ConnectResponse, ParseError> {
    const WHAT: &str = "mcs connect-response";
    let contents = connect_contents(i, WHAT)?;
    let elems = tlvs(contents, WHAT)?;
    let result = match elems.first() {
        Some((0x0A, [r])) => *r,
        _ => return Err(ParseError::new(WHAT, "no result enumerated")),
    };
    let mut cr = ConnectResponse {
        result,
        ..ConnectResponse::default()
    };
    let user_data = match elems.last() {
        Some((0x04, v)) => *v,
        // A failed connect may carry no user data.
        _ => return Ok(cr),
    };
    let Some(blocks) = gcc_blocks(user_data, b"McDn") else {
        return Ok(cr);
    };
    for (t, body) in split_blocks(blocks) {
        cr.block_types.push(t);
        match t {
            block_type::SC_CORE => cr.server_core = parse_server_core(body),
            block_type::SC_SECURITY => cr.server_security = parse_server_security(body),
            block_type::SC_NET => {
                if let Ok((ids, (io, count))) = server_net_header(body) {
                    cr.io_channel = Some(io);
                    cr.channel_ids = ids
                        .chunks_exact(2)
                        .take(usize::from(count).min(MAX_CHANNELS))
                        .filter_map(|c| c.try_into().ok().map(u16::from_le_bytes))
                        .collect();
                }
            }
            _ => {}
        }
    }
    Ok(cr)
}

fn server_net_header(i: &[u8]) -> IResult<&[u8], (u16, u16)> {
    let (i, io) = le_u16(i)?;
    let (i, count) = le_u16(i)?;
    Ok((i, (io, count)))
}

/// TS_UD_SC_CORE (MS-RDPBCGR 2.2.1.4.2): version, then optional clientRequestedProtocols and
/// earlyCapabilityFlags.
fn parse_server_core(b: &[u8]) -> Option<ServerCore> {
    let (r, version) = le_u32::<_, ()>(b).ok()?;
    let (r, client_requested_protocols) = match le_u32::<_, ()>(r) {
        Ok((r, v)) => (r, Some(v)),
        Err(_) => (r, None),
    };
    let early_capability_flags = le_u32::<_, ()>(r).ok().map(|(_, v)| v);
    Some(ServerCore {
        version,
        client_requested_protocols,
        early_capability_flags,
    })
}

/// TS_UD_SC_SEC1 (MS-RDPBCGR 2.2.1.4.3): method, level, then (Standard RDP Security only)
/// serverRandomLen, serverCertLen, serverRandom and the certificate whose dwVersion says
/// proprietary (1) or X.509 chain (2); top bit set = temporary.
fn parse_server_security(b: &[u8]) -> Option<ServerSecurity> {
    let (r, encryption_method) = le_u32::<_, ()>(b).ok()?;
    let (r, encryption_level) = le_u32::<_, ()>(r).ok()?;
    let mut sec = ServerSecurity {
        encryption_method,
        encryption_level,
        ..ServerSecurity::default()
    };
    let Ok((r, (random_len, _cert_len))) = two_u32(r) else {
        return Some(sec);
    };
    sec.server_random_len = random_len;
    let cert = usize::try_from(random_len)
        .ok()
        .and_then(|n| r.get(n..))
        .unwrap_or_default();
    if let Ok((r, dw_version)) = le_u32::<_, ()>(cert) {
        sec.permanent = dw_version & 0x8000_0000 == 0;
        sec.certificate = match dw_version & 0x7FFF_FFFF {
            1 => Some(ServerCertificate::Proprietary),
            2 => le_u32::<_, ()>(r)
                .ok()
                .map(|(_, count)| ServerCertificate::X509 { count }),
            _ => None,
        };
        if sec.certificate.is_none() {
            sec.permanent = false;
        }
    }
    Some(sec)
}

fn two_u32(i: &[u8]) -> IResult<&[u8], (u32, u32)> {
    let (i, a) = le_u32(i)?;
    let (i, b) = le_u32(i)?;
    Ok((i, (a, b)))
}

/// Security header flags (MS-RDPBCGR 2.2.8.1.1.2.1 TS_SECURITY_HEADER `flags`).
pub mod sec_flags {
    /// SEC_EXCHANGE_PKT: Security Exchange PDU.
    pub const SEC_EXCHANGE_PKT: u16 = 0x0001;
    /// SEC_TRANSPORT_REQ: Initiate Multitransport Request.
    pub const SEC_TRANSPORT_REQ: u16 = 0x0002;
    /// SEC_TRANSPORT_RSP: Initiate Multitransport Response.
    pub const SEC_TRANSPORT_RSP: u16 = 0x0004;
    /// SEC_ENCRYPT: the data is encrypted (Standard RDP Security).
    pub const SEC_ENCRYPT: u16 = 0x0008;
    /// SEC_RESET_SEQNO: unused.
    pub const SEC_RESET_SEQNO: u16 = 0x0010;
    /// SEC_IGNORE_SEQNO: unused.
    pub const SEC_IGNORE_SEQNO: u16 = 0x0020;
    /// SEC_INFO_PKT: Client Info PDU.
    pub const SEC_INFO_PKT: u16 = 0x0040;
    /// SEC_LICENSE_PKT: licensing PDU.
    pub const SEC_LICENSE_PKT: u16 = 0x0080;
    /// SEC_LICENSE_ENCRYPT_CS: the client may encrypt licensing PDUs.
    pub const SEC_LICENSE_ENCRYPT_CS: u16 = 0x0200;
    /// SEC_REDIRECTION_PKT: Standard Security Server Redirection PDU.
    pub const SEC_REDIRECTION_PKT: u16 = 0x0400;
    /// SEC_SECURE_CHECKSUM: salted MAC.
    pub const SEC_SECURE_CHECKSUM: u16 = 0x0800;
    /// SEC_AUTODETECT_REQ: auto-detect request.
    pub const SEC_AUTODETECT_REQ: u16 = 0x1000;
    /// SEC_AUTODETECT_RSP: auto-detect response.
    pub const SEC_AUTODETECT_RSP: u16 = 0x2000;
    /// SEC_HEARTBEAT: heartbeat PDU.
    pub const SEC_HEARTBEAT: u16 = 0x4000;
    /// SEC_FLAGSHI_VALID: flagsHi is valid.
    pub const SEC_FLAGSHI_VALID: u16 = 0x8000;
}

/// The `flags` of the basic security header (MS-RDPBCGR 2.2.8.1.1.2.1) at the start of Send Data
/// user data; `None` under 4 bytes. Only meaningful where a security header is present (Standard
/// RDP Security, or licensing / Client Info / auto-detect PDUs under Enhanced RDP Security).
pub fn security_flags(user_data: &[u8]) -> Option<u16> {
    let (_, flags) = le_u16::<_, ()>(user_data.get(..4)?).ok()?;
    Some(flags)
}

/// Licensing preamble bMsgType ERROR_ALERT (MS-RDPBCGR 2.2.1.12.1.1).
pub const LICENSE_ERROR_ALERT: u8 = 0xFF;

/// A clear licensing Error Alert (MS-RDPBCGR 2.2.1.12 Server License Error PDU, 2.2.1.12.1.3
/// LICENSE_ERROR_MESSAGE): `(dwErrorCode, dwStateTransition)`. `None` unless the security header
/// has SEC_LICENSE_PKT without SEC_ENCRYPT and bMsgType is ERROR_ALERT.
pub fn parse_license_error(user_data: &[u8]) -> Option<(u32, u32)> {
    fn body(i: &[u8]) -> IResult<&[u8], (u16, u8, u32, u32)> {
        let (i, flags) = le_u16(i)?;
        let (i, _flags_hi) = le_u16(i)?;
        let (i, msg_type) = be_u8(i)?;
        let (i, _preamble_flags) = be_u8(i)?;
        let (i, _msg_size) = le_u16(i)?;
        let (i, code) = le_u32(i)?;
        let (i, state) = le_u32(i)?;
        Ok((i, (flags, msg_type, code, state)))
    }
    let (_, (flags, msg_type, code, state)) = body(user_data).ok()?;
    let clear_license =
        flags & sec_flags::SEC_LICENSE_PKT != 0 && flags & sec_flags::SEC_ENCRYPT == 0;
    (clear_license && msg_type == LICENSE_ERROR_ALERT).then_some((code, state))
}

/// Share Control pduType values (MS-RDPBCGR 2.2.8.1.1.1.1, low 4 bits).
pub mod pdu_type {
    /// PDUTYPE_DEMANDACTIVEPDU.
    pub const DEMAND_ACTIVE: u16 = 0x1;
    /// PDUTYPE_CONFIRMACTIVEPDU.
    pub const CONFIRM_ACTIVE: u16 = 0x3;
    /// PDUTYPE_DEACTIVATEALLPDU.
    pub const DEACTIVATE_ALL: u16 = 0x6;
    /// PDUTYPE_DATAPDU.
    pub const DATA: u16 = 0x7;
    /// PDUTYPE_SERVER_REDIR_PKT.
    pub const SERVER_REDIRECT: u16 = 0xA;
}

/// pduType2 of the Set Error Info PDU (MS-RDPBCGR 2.2.8.1.1.1.2 PDUTYPE2_SET_ERROR_INFO_PDU).
pub const PDUTYPE2_SET_ERROR_INFO: u8 = 0x2F;
/// pduType2 values of the connection finalization PDUs (MS-RDPBCGR 2.2.8.1.1.1.2;
/// 2.2.1.14-2.2.1.22: Synchronize, Control (Cooperate, Request Control, Granted Control),
/// Font List, Font Map).
pub mod finalization {
    /// PDUTYPE2_CONTROL.
    pub const CONTROL: u8 = 0x14;
    /// PDUTYPE2_SYNCHRONIZE.
    pub const SYNCHRONIZE: u8 = 0x1F;
    /// PDUTYPE2_FONTLIST.
    pub const FONTLIST: u8 = 0x27;
    /// PDUTYPE2_FONTMAP.
    pub const FONTMAP: u8 = 0x28;

    /// The PDU's name, for a finalization pduType2.
    pub fn name(pdu_type2: u8) -> Option<&'static str> {
        Some(match pdu_type2 {
            CONTROL => "Control",
            SYNCHRONIZE => "Synchronize",
            FONTLIST => "Font List",
            FONTMAP => "Font Map",
            _ => return None,
        })
    }
}

/// Length of the plaintext of an encrypted Standard RDP Security PDU (Send Data user data with
/// SEC_ENCRYPT): the data after the non-FIPS security header (MS-RDPBCGR 2.2.8.1.1.2.2: flags,
/// flagsHi, 8-byte MAC) or, when `fips`, after the FIPS header (2.2.8.1.1.2.3: flags, flagsHi,
/// length 0x10, version 1, padlen, 8-byte MAC) less its padding. RC4 keeps lengths, so this is
/// the PDU's own length. `None` when the header does not fit or is inconsistent.
pub fn encrypted_plaintext_len(user_data: &[u8], fips: bool) -> Option<usize> {
    if !fips {
        return user_data.len().checked_sub(12);
    }
    let hdr = user_data.get(4..8)?;
    let (len, version, padlen) = (
        u16::from_le_bytes([*hdr.first()?, *hdr.get(1)?]),
        *hdr.get(2)?,
        *hdr.get(3)?,
    );
    if len != 0x10 || version != 1 || padlen > 7 {
        return None;
    }
    user_data
        .len()
        .checked_sub(16)?
        .checked_sub(usize::from(padlen))
}

/// PACKET_COMPRESSED bit of the Share Data header compressedType (MS-RDPBCGR 2.2.8.1.1.1.2).
const PACKET_COMPRESSED: u8 = 0x20;

/// A clear Share Control header, with the Share Data pduType2 and Set Error Info errorInfo
/// when present (MS-RDPBCGR 2.2.8.1.1.1.1, 2.2.8.1.1.1.2, 2.2.5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShareControl {
    /// pduType & 0x0F (see [`pdu_type`]).
    pub pdu_type: u16,
    /// pduType2 of a Data PDU.
    pub pdu_type2: Option<u8>,
    /// errorInfo of an uncompressed Set Error Info PDU (see [`super::codes::error_info_name`]).
    pub error_info: Option<u32>,
}

/// Reads a clear Share Control header (MS-RDPBCGR 2.2.8.1.1.1.1): totalLength, pduType, pduSource;
/// for Data PDUs the Share Data header (2.2.8.1.1.1.2) and, for Set Error Info, errorInfo.
/// `None` under 4 bytes, for a flow-control PDU (totalLength 0x8000) or a pduType version other
/// than 1 (bits 4-15 = 0x001).
pub fn parse_share_control(i: &[u8]) -> Option<ShareControl> {
    fn header(i: &[u8]) -> IResult<&[u8], (u16, u16)> {
        let (i, total) = le_u16(i)?;
        let (i, ty) = le_u16(i)?;
        Ok((i, (total, ty)))
    }
    fn data_header(i: &[u8]) -> IResult<&[u8], (u8, u8)> {
        let (i, _pdu_source) = le_u16(i)?;
        let (i, _share_id) = le_u32(i)?;
        let (i, _pad_stream) = le_u16(i)?;
        let (i, _uncompressed_len) = le_u16(i)?;
        let (i, pdu_type2) = be_u8(i)?;
        let (i, compressed_type) = be_u8(i)?;
        let (i, _compressed_len) = le_u16(i)?;
        Ok((i, (pdu_type2, compressed_type)))
    }
    let (r, (total, ty)) = header(i).ok()?;
    if total == 0x8000 || ty >> 4 != 0x001 {
        return None;
    }
    let pdu_type = ty & 0x0F;
    let mut sc = ShareControl {
        pdu_type,
        pdu_type2: None,
        error_info: None,
    };
    if pdu_type == pdu_type::DATA {
        if let Ok((r, (pdu_type2, compressed_type))) = data_header(r) {
            sc.pdu_type2 = Some(pdu_type2);
            if pdu_type2 == PDUTYPE2_SET_ERROR_INFO && compressed_type & PACKET_COMPRESSED == 0 {
                sc.error_info = le_u32::<_, ()>(r).ok().map(|(_, e)| e);
            }
        }
    }
    Some(sc)
}

/// Whether Send Data user data under Enhanced RDP Security starts with a bare Share Control
/// header (MS-RDPBCGR 2.2.8.1.1.1.1: totalLength equal to the PDU's length, or 0x8000 for a
/// flow-control PDU; pduType version 1) rather than a basic security header.
pub fn is_share_control(i: &[u8]) -> bool {
    let (Some(total), Some(ty)) = (i.get(0..2), i.get(2..4)) else {
        return false;
    };
    let (Ok(total), Ok(ty)) = (<[u8; 2]>::try_from(total), <[u8; 2]>::try_from(ty)) else {
        return false;
    };
    let total = usize::from(u16::from_le_bytes(total));
    let ty = u16::from_le_bytes(ty);
    total == 0x8000 || (total == i.len() && ty >> 4 == 0x001)
}

/// RedirFlags LB_TARGET_NET_ADDRESS (MS-RDPBCGR 2.2.13.1).
const LB_TARGET_NET_ADDRESS: u32 = 0x1;
/// RedirFlags LB_LOAD_BALANCE_INFO.
const LB_LOAD_BALANCE_INFO: u32 = 0x2;
/// RedirFlags LB_USERNAME.
const LB_USERNAME: u32 = 0x4;
/// RedirFlags LB_DOMAIN.
const LB_DOMAIN: u32 = 0x8;
/// RedirFlags LB_PASSWORD.
const LB_PASSWORD: u32 = 0x10;
/// RedirFlags LB_TARGET_FQDN.
const LB_TARGET_FQDN: u32 = 0x100;

/// The target of an Enhanced Security Server Redirection PDU (MS-RDPBCGR 2.2.13.3.1: Share
/// Control header, 2 pad bytes, then RDP_SERVER_REDIRECTION_PACKET 2.2.13.1 whose Flags are
/// SEC_REDIRECTION_PKT): TargetNetAddress, else TargetFQDN, else the load-balance info
/// length. `None` when the packet is malformed; `Some(None)` when it names no target.
pub fn parse_redirection(pdu: &[u8]) -> Option<Option<String>> {
    fn fields(i: &[u8]) -> IResult<&[u8], (u16, u32)> {
        let (i, flags) = le_u16(i)?;
        let (i, _len) = le_u16(i)?;
        let (i, _session) = le_u32(i)?;
        let (i, redir) = le_u32(i)?;
        Ok((i, (flags, redir)))
    }
    fn blob(i: &[u8]) -> IResult<&[u8], &[u8]> {
        nom::multi::length_data(le_u32)(i)
    }
    fn utf16(b: &[u8]) -> String {
        let units: Vec<u16> = b
            .chunks_exact(2)
            .filter_map(|c| Some(u16::from_le_bytes(c.try_into().ok()?)))
            .take_while(|u| *u != 0)
            .collect();
        String::from_utf16_lossy(&units)
    }
    let (mut i, (flags, redir)) = fields(pdu.get(8..)?).ok()?;
    if flags != sec_flags::SEC_REDIRECTION_PKT {
        return None;
    }
    let mut target = None;
    let mut lb_len = None;
    for (bit, keep) in [
        (LB_TARGET_NET_ADDRESS, 1),
        (LB_LOAD_BALANCE_INFO, 2),
        (LB_USERNAME, 0),
        (LB_DOMAIN, 0),
        (LB_PASSWORD, 0),
        (LB_TARGET_FQDN, 3),
    ] {
        if redir & bit == 0 {
            continue;
        }
        let (rest, b) = blob(i).ok()?;
        i = rest;
        match keep {
            1 => target = Some(utf16(b)),
            2 => lb_len = Some(b.len()),
            3 if target.as_deref().map_or(true, str::is_empty) => target = Some(utf16(b)),
            _ => {}
        }
    }
    Some(
        target
            .filter(|t| !t.is_empty())
            .or(lb_len
                .map(|n| format!("a connection broker target ({n} bytes of load-balance info)"))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codes;

    fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        s.chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// X.224 Data user data of a TCP payload: strips TPKT (4) and X.224 DT (`02 f0 80`).
    fn dt(tcp_payload_hex: &str) -> Vec<u8> {
        let b = hex(tcp_payload_hex);
        assert_eq!(&b[4..7], &[0x02, 0xf0, 0x80]);
        b[7..].to_vec()
    }

    /// nDPI/rdp3.pcap frame 29: an encrypted client PDU (flags SEC_ENCRYPT|SEC_IGNORE_SEQNO,
    /// 8-byte MAC, 22 bytes of RC4 ciphertext: the size of a Synchronize PDU).
    #[test]
    fn encrypted_len_non_fips() {
        let ud = dt("0300003002f08064000603eb7022280081f826f09bcff83178cf0e152112f1ebd1d79253550b32deb7f9bec1ecde1485");
        let McsPdu::SendDataRequest { user_data, .. } = parse_mcs(&ud).unwrap() else {
            panic!("send data request")
        };
        assert_eq!(user_data.len(), 34);
        assert_eq!(encrypted_plaintext_len(user_data, false), Some(22));
        // Not a FIPS header (length 0xf826 is not 0x10).
        assert_eq!(encrypted_plaintext_len(user_data, true), None);
        // One byte short of a MAC.
        assert_eq!(encrypted_plaintext_len(&user_data[..11], false), None);
    }

    /// testdata/own/rdp-std-security-success.pcap frame 45 (xrdp, FIPS): flags
    /// SEC_ENCRYPT|SEC_SECURE_CHECKSUM, length 0x0010, version 1, padlen 2, MAC, 24 bytes of
    /// 3DES ciphertext: a 22-byte Synchronize PDU.
    #[test]
    fn encrypted_len_fips() {
        let ud = dt("0300003702f08064000703eb7080280808000010000102aaacc29bace35f10612f98efe62f57c27c548f8a22d74328260067267c5703bb");
        let McsPdu::SendDataRequest { user_data, .. } = parse_mcs(&ud).unwrap() else {
            panic!("send data request")
        };
        assert_eq!(user_data.len(), 40);
        assert_eq!(encrypted_plaintext_len(user_data, true), Some(22));
        assert_eq!(encrypted_plaintext_len(user_data, false), Some(28));
        assert_eq!(encrypted_plaintext_len(&user_data[..7], true), None);
        assert_eq!(encrypted_plaintext_len(&user_data[..17], true), None);
    }

    #[test]
    fn finalization_names() {
        assert_eq!(finalization::name(0x1F), Some("Synchronize"));
        assert_eq!(finalization::name(0x28), Some("Font Map"));
        assert_eq!(finalization::name(PDUTYPE2_SET_ERROR_INFO), None);
    }

    /// suricata-verify/RDP-003.pcap frame 7: Connect-Initial of an XP-era client (RDP 5.x).
    const RDP003_CI: &str = "0300019c02f0807f658201900401010401010101ff30190201220201020201000201010201000201010202ffff020102301902010102010102010102010102010002010102020420020102301c0202ffff0202fc170202ffff0201010201000201010202ffff0201020482012f000500147c00018126000800100001c00044756361811801c0d400040008008004600301ca03aa09040000280a000049005300440032002d004b004d0038003400310037003800000000000000000004000000000000000c0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001ca0100000000000f0007000100350035003200370034002d004f0045004d002d0030003000310031003900300033002d0030003000310030003700000000000000000000000000000000000000000004c00c00090000000000000002c00c000b0000000000000003c02c0003000000726470647200000000008080636c6970726472000000a0c0726470736e640000000000c0";

    /// suricata-verify/RDP-003.pcap frame 8: Connect-Response with a proprietary certificate.
    const RDP003_CR: &str = "0300014d02f0807f668201410a0100020100301a020122020103020100020101020100020101020300fff80201020482011b000500147c00012a14760a01010001c0004d63446e8104010c080004000800030c1000eb030300ec03ed03ee030000020cec00080000000200000020000000b8000000778e84ed14edf1083d361284c28dcd52da72301be1dc7fdf62accd22660b337201000000010000000100000006005c005253413148000000000200003f0000000100010083f6d4ca7c05975a72cb0b5ca0ece59d468470e83ac0589091a00c9119bcab88efc96b261a6290e8a9385b5aa4198f5f29caa6c62c91439003bda0a2e9b8a6c90000000000000000080048001b0c7249c4782f8c7d4c9fc6182f3164c66099979fa4f292683db067cfc711a7237512767a01199ca613beaf0647dd0120a94e54066f6a61018e57e725ee0f3f0000000000000000";

    #[test]
    fn connect_initial_rdp003() {
        let ud = dt(RDP003_CI);
        let McsPdu::ConnectInitial(ci) = parse_mcs(&ud).unwrap() else {
            panic!("not a connect-initial")
        };
        // Blocks: CS_CORE (212 bytes), CS_CLUSTER, CS_SECURITY, CS_NET.
        assert_eq!(ci.block_types, vec![0xC001, 0xC004, 0xC002, 0xC003]);
        let core = ci.client_core.unwrap();
        // version 04 00 08 00 = RDP 5.x; desktop 80 04 x 60 03 = 1152x864.
        assert_eq!(core.version, 0x0008_0004);
        assert_eq!((core.desktop_width, core.desktop_height), (1152, 864));
        // keyboardLayout 09 04 00 00 (en-US); clientBuild 28 0a 00 00 = 2600 (XP).
        assert_eq!(core.keyboard_layout, 0x409);
        assert_eq!(core.client_build, 2600);
        assert_eq!(core.client_name, "ISD2-KM84178");
        // earlyCapabilityFlags 01 00 (RNS_UD_CS_SUPPORT_ERRINFO_PDU); the block ends before
        // serverSelectedProtocol.
        assert_eq!(core.early_capability_flags, Some(1));
        assert_eq!(core.server_selected_protocol, None);
        // CS_SECURITY encryptionMethods 0b 00 00 00 = 40BIT|128BIT|56BIT.
        let sec = ci.client_security.unwrap();
        assert_eq!(
            codes::encryption_method_name(sec.encryption_methods),
            "40BIT|128BIT|56BIT"
        );
        // CS_CLUSTER flags 09 00 00 00.
        assert_eq!(ci.cluster_flags, Some(9));
        // CS_NET: 3 channels.
        assert_eq!(ci.channels, vec!["rdpdr", "cliprdr", "rdpsnd"]);
    }

    #[test]
    fn connect_response_rdp003_proprietary() {
        let ud = dt(RDP003_CR);
        let McsPdu::ConnectResponse(cr) = parse_mcs(&ud).unwrap() else {
            panic!("not a connect-response")
        };
        // result 0a 01 00 = rt-successful.
        assert_eq!(codes::mcs_result_name(cr.result), "rt-successful");
        assert_eq!(cr.block_types, vec![0x0C01, 0x0C03, 0x0C02]);
        // SC_CORE of 8 bytes: version only.
        assert_eq!(
            cr.server_core,
            Some(ServerCore {
                version: 0x0008_0004,
                client_requested_protocols: None,
                early_capability_flags: None
            })
        );
        // SC_NET: I/O channel eb 03 = 1003, channels 1004..1006.
        assert_eq!(cr.io_channel, Some(1003));
        assert_eq!(cr.channel_ids, vec![1004, 1005, 1006]);
        // SC_SECURITY: method 08 (56BIT), level 02 (CLIENT_COMPATIBLE), 32-byte random,
        // certificate dwVersion 01 00 00 00 = proprietary, permanent.
        let s = cr.server_security.unwrap();
        assert_eq!(codes::encryption_method_name(s.encryption_method), "56BIT");
        assert_eq!(
            codes::encryption_level_name(s.encryption_level),
            "CLIENT_COMPATIBLE"
        );
        assert_eq!(s.server_random_len, 32);
        assert_eq!(s.certificate, Some(ServerCertificate::Proprietary));
        assert!(s.permanent);
    }

    /// zeek/rdp-x509.pcap frames 12 and 13 concatenated (TPKT length 0x57d = 1398 + 7 bytes).
    const RDP_X509_CR: &str = "0300057d02f0807f668205710a0100020100301a020122020103020100020101020100020101020300fff80201020482054b000500147c00012a14760a01010001c0004d63446e8534010c0c000400080000000000030c1000eb030400ec03ed03ee03ef03020c1805020000000200000020000000e40400009fda0605a0e36f690bff0ca0b121db62dae41b971235375c712b642d8ae3cfa702000080020000005f0100003082015b30820109a003020102020859eb28cb02b1a0d4300906052b0e03021d0500302c312a301106035504031e0a00530045005200560052301506035504071e0e005400550052004e0042004b004c301e170d3135303231313134313530365a170d3135303531323030303030305a302c312a301106035504031e0a00530045005200560052301506035504071e0e005400550052004e0042004b004c305c300d06092a864886f70d0101010500034b003048024100d31474f69f983d557757f6680d765c1965f19f8b7d31a605a2aa3b47e14ba9d01a3fce1780402e77838f7bb5e47be12c18eefcc3e277ffd9d6936ad6ce9809fd0203010001a3133011300f0603551d13040830060101ff020100300906052b0e03021d05000341008a9264745d17d5003e74c9039a10e0c1f3ae56d8ef0f5523cda88209f56bdad26a18caa9b2a1d12a7aee6b57858a3a07aafb116c5fb9feff7592abaa02feac9c65030000308203613082030fa00302010202050100000001300906052b0e03021d0500302c312a301106035504031e0a00530045005200560052301506035504071e0e005400550052004e0042004b004c301e170d3133303430353135313535355a170d3136313233313233353935395a30818e31818b302106035504031e1a006e00630061006c007200700063003a00530045005200560052302106035504071e1a006e00630061006c007200700063003a00530045005200560052304306035504051e3c003100420063004b006500660059005300460039003700450076006b0061006900430071006100680050005900380075005000640030003d000d000a305c300d06092a864886f70d0101040500034b003048024100f22d4e9a36ed8f684449ede380f86db3fc0360ad644dc4e3a5d200e9247b92efa8657610e7fbe2256f46837c33d8620ccbb366963b13c6772b60428cb221acc70203010001a38201b7308201b3301406092b06010401823712040101ff040401000500303c06092b06010401823712020101ff042c4d006900630072006f0073006f0066007400200043006f00720070006f0072006100740069006f006e0000003081cd06092b06010401823712050101ff0481bc003000000100000002000000090400001c004a0066004a00b0000100330064003200360037003900350034002d0065006500630037002d0031003100640031002d0062003900340065002d003000300064003000340066006100330030003800300064000000330064003200360037003900350034002d0064006500610037002d0031003200640031002d0062003900340065002d003000300063003000340066006100330030003800300064000000000000100080d40000000000306806092b06010401823712060101ff04580030000000000c003c00530045005200560052000000360039003700310033002d003000310032002d0034003700300031003700360033002d003400340037003500310000005400550052004e0042004b004c000000000030230603551d230101ff04193017a10ea40c53004500520056005200000082050100000001300906052b0e03021d0500034100aad15319b38adaf8857735cc8a23af10d4c0c2407ca60092163e4e65e38331c22395ecbe98581f61d9924279fa483f72aa4064c01d34016491ee237ce26bcce300000000000000000000000000000000";

    #[test]
    fn connect_response_x509() {
        // zeek/rdp-x509.pcap frames 12 + 13 (the PDU spans two segments): Connect-Response with an
        // X.509 certificate chain.
        let ud = dt(RDP_X509_CR);
        let McsPdu::ConnectResponse(cr) = parse_mcs(&ud).unwrap() else {
            panic!()
        };
        assert_eq!(cr.result, 0);
        let s = cr.server_security.unwrap();
        assert_eq!(codes::encryption_method_name(s.encryption_method), "128BIT");
        assert!(matches!(s.certificate, Some(ServerCertificate::X509 { count }) if count >= 2));
    }

    #[test]
    fn connect_pdu_one_byte_short() {
        let ud = dt(RDP003_CR);
        assert!(parse_mcs(&ud[..ud.len() - 1]).is_err());
        let ud = dt(RDP003_CI);
        assert!(parse_mcs(&ud[..ud.len() - 1]).is_err());
        assert!(parse_mcs(&[0x7f]).is_err());
        assert!(parse_mcs(&[]).is_err());
    }

    #[test]
    fn domain_pdus_rdp003() {
        // Frame 9: 04 01 00 01 00 = Erect Domain Request (subHeight 0, subInterval 0).
        assert_eq!(
            parse_mcs(&dt("0300000c02f0800401000100")),
            Ok(McsPdu::ErectDomainRequest)
        );
        // Frame 10: 28 = Attach User Request.
        assert_eq!(
            parse_mcs(&dt("0300000802f08028")),
            Ok(McsPdu::AttachUserRequest)
        );
        // Frame 12: 2e = confirm with initiator, result 00, initiator 00 06 (+1001 = 1007).
        assert_eq!(
            parse_mcs(&dt("0300000b02f0802e000006")),
            Ok(McsPdu::AttachUserConfirm {
                result: 0,
                initiator: Some(1007)
            })
        );
        // Frame 13: 38 = join request, initiator 00 06, channelId 03 ef = 1007.
        assert_eq!(
            parse_mcs(&dt("0300000c02f08038000603ef")),
            Ok(McsPdu::ChannelJoinRequest {
                initiator: 1007,
                channel_id: 1007
            })
        );
        // Frame 14: 3e = join confirm with channelId, result 00, initiator, requested 03ef, channelId 03ef.
        assert_eq!(
            parse_mcs(&dt("0300000f02f0803e00000603ef03ef")),
            Ok(McsPdu::ChannelJoinConfirm {
                result: 0,
                channel_id: Some(1007)
            })
        );
        // Frame 431: 21 80 = Disconnect Provider Ultimatum, reason 3 (rn-user-requested).
        let Ok(McsPdu::DisconnectProviderUltimatum { reason }) =
            parse_mcs(&dt("0300000902f0802180"))
        else {
            panic!()
        };
        assert_eq!(codes::mcs_reason_name(reason), "rn-user-requested");
        // One byte short: the reason byte is missing.
        assert!(parse_mcs(&[0x21]).is_err());
        assert!(parse_mcs(&[0x3e, 0x00, 0x00]).is_err());
    }

    #[test]
    fn dpum_proprietary_encryption() {
        // zeek/rdp-proprietary-encryption.pcap frame 538 (expected.tsv: server MCS-DPUm@538).
        assert_eq!(
            parse_mcs(&dt("0300000902f0802180")),
            Ok(McsPdu::DisconnectProviderUltimatum { reason: 3 })
        );
        // Provider-initiated form 20 80.
        assert_eq!(
            parse_mcs(&[0x20, 0x80]),
            Ok(McsPdu::DisconnectProviderUltimatum { reason: 1 })
        );
    }

    #[test]
    fn send_data_and_clear_license_error() {
        // RDP-003.pcap frame 26: 68 = Send Data Indication, initiator 00 01 (1002), channel 03 eb
        // (1003), 70 = high priority + begin/end, length 14, then the licensing PDU.
        let ud = dt("0300002202f08068000103eb701480021000ff021000070000000200000038e20000");
        let Ok(McsPdu::SendDataIndication {
            initiator,
            channel_id,
            user_data,
        }) = parse_mcs(&ud)
        else {
            panic!()
        };
        assert_eq!((initiator, channel_id, user_data.len()), (1002, 1003, 0x14));
        // Security header 80 02 = SEC_LICENSE_PKT | SEC_LICENSE_ENCRYPT_CS, no SEC_ENCRYPT.
        assert_eq!(security_flags(user_data), Some(0x0280));
        // Preamble ff 02 10 00 = ERROR_ALERT; dwErrorCode 7 STATUS_VALID_CLIENT; state 2 ST_NO_TRANSITION.
        let (code, state) = parse_license_error(user_data).unwrap();
        assert_eq!(codes::license_error_name(code), Some("STATUS_VALID_CLIENT"));
        assert_eq!(codes::license_state_name(state), Some("ST_NO_TRANSITION"));
        // One byte short: dwStateTransition incomplete.
        assert_eq!(parse_license_error(&user_data[..15]), None);
        // A length beyond the input yields what is there.
        let Ok(McsPdu::SendDataIndication { user_data, .. }) = parse_mcs(&ud[..ud.len() - 1])
        else {
            panic!()
        };
        assert_eq!(user_data.len(), 0x13);
    }

    #[test]
    fn encrypted_license_and_send_data_request() {
        // zeek/rdp-proprietary-encryption.pcap frame 35: licensing PDU with SEC_ENCRYPT (88 02).
        let ud = dt(
            "0300002a02f08068000103eb701c880202032d978c4675476d4aa3cd471b31ab7951bb8445b8da0a6273",
        );
        let Ok(McsPdu::SendDataIndication { user_data, .. }) = parse_mcs(&ud) else {
            panic!()
        };
        assert_eq!(security_flags(user_data), Some(0x0288));
        assert_eq!(parse_license_error(user_data), None);
        // RDP-003.pcap frame 23 (first bytes): 64 = Send Data Request, initiator 00 06 (1007),
        // channel 03 eb, 70, length 50; security header 01 02 = SEC_EXCHANGE_PKT.
        let ud = dt("0300005e02f08064000603eb705001020000480000004cecf8647da611d0");
        let Ok(McsPdu::SendDataRequest {
            initiator,
            channel_id,
            user_data,
        }) = parse_mcs(&ud)
        else {
            panic!()
        };
        assert_eq!((initiator, channel_id), (1007, 1003));
        assert_eq!(
            security_flags(user_data).map(|f| f & sec_flags::SEC_EXCHANGE_PKT),
            Some(1)
        );
        // Two-byte PER length (zeek/rdp-proprietary-encryption.pcap frame 36 header: 70 81 73).
        let Ok(McsPdu::SendDataIndication { user_data, .. }) =
            parse_mcs(&[0x68, 0x00, 0x01, 0x03, 0xeb, 0x70, 0x81, 0x73, 0x08])
        else {
            panic!()
        };
        assert_eq!(user_data, &[0x08]);
    }

    #[test]
    fn set_error_info_from_decrypted_tls() {
        // wireshark-rdp/rdp-credential-guard-accepted1.pcapng frame 2067, decrypted with the
        // embedded TLS keys (tshark -d tcp.port==3389,tls -x): Send Data Indication on 1003.
        let ud = dt("030000240 2f08068000103eb30161600170000 00ea030100000116002f000000 0c000000");
        let Ok(McsPdu::SendDataIndication {
            channel_id,
            user_data,
            ..
        }) = parse_mcs(&ud)
        else {
            panic!()
        };
        assert_eq!(channel_id, 1003);
        // Enhanced security: no security header. 16 00 totalLength, 17 00 = pduType 7 version 1,
        // 00 00 pduSource; shareId ea 03 01 00, pad, streamId 01, uncompressedLength 16 00,
        // pduType2 2f, compressedType 00, compressedLength 00 00, errorInfo 0c 00 00 00.
        let sc = parse_share_control(user_data).unwrap();
        assert_eq!(
            sc,
            ShareControl {
                pdu_type: 7,
                pdu_type2: Some(0x2F),
                error_info: Some(0xC)
            }
        );
        assert_eq!(codes::error_info_name(0xC), Some("ERRINFO_LOGOFF_BY_USER"));
        // One byte short: errorInfo unreadable, header still known.
        let sc = parse_share_control(&user_data[..user_data.len() - 1]).unwrap();
        assert_eq!(sc.error_info, None);
        assert_eq!(sc.pdu_type2, Some(0x2F));
        // Flow-control PDU and short input.
        assert_eq!(parse_share_control(&[0x00, 0x80, 0x41, 0x00]), None);
        assert_eq!(parse_share_control(&[0x16, 0x00, 0x17]), None);
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        // BER length with 5 length bytes, huge lengths, garbage blocks.
        for bad in [
            &[0x7f, 0x65, 0x85, 1, 2, 3, 4, 5][..],
            &[0x7f, 0x66, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x7f, 0x65, 0x03, 0x04, 0x10, 0x00],
            &[0x68, 0xff, 0xff, 0x00, 0x01, 0x70, 0xc0],
            &[0x2e],
            &[0x38, 0x00],
        ] {
            let _ = parse_mcs(bad);
        }
        // Initiator overflow (0xffff + 1001) is rejected, not wrapped.
        assert!(parse_mcs(&[0x38, 0xff, 0xff, 0x03, 0xeb]).is_err());
        assert_eq!(
            parse_mcs(&[0x2e, 0x00, 0xff, 0xff]),
            Ok(McsPdu::AttachUserConfirm {
                result: 0,
                initiator: None
            })
        );
        assert_eq!(parse_mcs(&[0x7f, 0x67, 0x00]), Ok(McsPdu::Other(0x67)));
        assert_eq!(parse_mcs(&[0x30]), Ok(McsPdu::Other(12)));
    }

    /// Arbitrary bytes (and bytes opening like a real PDU): no panic, framing within bounds.
    mod arbitrary_bytes {
        use super::*;
        use proptest::prelude::*;

        fn bytes() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..400),
                (
                    prop::sample::select(vec![
                        &[0x7fu8, 0x65][..],
                        &[0x7f, 0x66],
                        &[0x64],
                        &[0x68],
                        &[0x20],
                        &[0x04, 0x01, 0x01],
                        &[0x80, 0, 0, 0, 0xff, 0x03]
                    ]),
                    prop::collection::vec(any::<u8>(), 0..400)
                )
                    .prop_map(|(head, mut v)| {
                        let mut h: Vec<u8> = head.to_vec();
                        h.append(&mut v);
                        h
                    }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]
            #[test]
            fn no_panic_and_bounded(i in bytes()) {
                let _ = parse_mcs(&i);
                let _ = security_flags(&i);
                let _ = parse_share_control(&i);
                let _ = parse_license_error(&i);
            }
        }
    }
}
