//! What the caller sees: members by node name with their state, and the changes as events.

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

/// A member's state in this member's view. `Suspect` still counts as alive (SWIM's rule): only `Down` moves
/// its addresses, so a member that is slow to answer once costs nothing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum MemberState {
    Alive,
    Suspect,
    Down,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
        }
    }

    pub fn is_active(self) -> bool {
        self != MemberState::Down
    }
}

impl From<foca::State> for MemberState {
    fn from(state: foca::State) -> Self {
        match state {
            foca::State::Alive => MemberState::Alive,
            foca::State::Suspect => MemberState::Suspect,
            foca::State::Down => MemberState::Down,
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member as this member sees it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MemberView {
    pub name: String,
    pub address: SocketAddr,
    pub state: MemberState,
    /// Raised by the member each time it refutes a suspicion.
    pub incarnation: u16,
    /// Raised each time it restarts or rejoins after being declared down.
    pub generation: u64,
}

/// What changed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum EventKind {
    /// A member joined, or came back after being down.
    Up,
    /// A member missed a probe; it is still counted alive until declared down.
    Suspect,
    /// A suspect refuted the suspicion.
    Alive,
    /// A member was declared down (failed, or left), or its address now belongs to another member.
    Down,
    /// This member lost contact with its peers (see [`super::Quorum`]): it should stop announcing.
    Isolated,
    /// This member hears from its peers again.
    Reconnected,
    /// The watch took this member's addresses over: it went silent and a witness confirmed (see
    /// [`super::watch`]). Held down in this member's view until it beats again.
    Held,
    /// A held-down member beats again, or came back as a newer life.
    Released,
    /// A member's heartbeat says it is ready (settled, announcing what it wins), or that it is not.
    Ready,
    Unready,
    /// This member hears no peer's heartbeat (its responder is muted until it does), and hears one again.
    Unheard,
    Heard,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Up => "up",
            EventKind::Suspect => "suspect",
            EventKind::Alive => "alive",
            EventKind::Down => "down",
            EventKind::Isolated => "isolated",
            EventKind::Reconnected => "reconnected",
            EventKind::Held => "held",
            EventKind::Released => "released",
            EventKind::Ready => "ready",
            EventKind::Unready => "unready",
            EventKind::Unheard => "unheard",
            EventKind::Heard => "heard",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of one member's state (or, for isolation, of this member's own), stamped with when this member
/// saw it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Event {
    pub kind: EventKind,
    pub name: String,
    pub address: SocketAddr,
    pub at: Instant,
}

/// The event for a member going from `before` to `after` (`None`: not in the view), if that is a change
/// callers act on.
pub fn transition(before: Option<MemberState>, after: Option<MemberState>) -> Option<EventKind> {
    use MemberState::*;
    match (before, after) {
        (None | Some(Down), Some(Alive | Suspect)) => Some(EventKind::Up),
        (Some(Alive), Some(Suspect)) => Some(EventKind::Suspect),
        (Some(Suspect), Some(Alive)) => Some(EventKind::Alive),
        (Some(Alive | Suspect), Some(Down) | None) => Some(EventKind::Down),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MemberState::*;

    #[test]
    fn transitions_table() {
        let cases = [
            (None, Some(Alive), Some(EventKind::Up)),
            (None, Some(Suspect), Some(EventKind::Up)),
            (Some(Down), Some(Alive), Some(EventKind::Up)),
            (Some(Alive), Some(Suspect), Some(EventKind::Suspect)),
            (Some(Suspect), Some(Alive), Some(EventKind::Alive)),
            (Some(Alive), Some(Down), Some(EventKind::Down)),
            (Some(Suspect), Some(Down), Some(EventKind::Down)),
            (Some(Alive), None, Some(EventKind::Down)),
            (Some(Down), None, None),
            (None, Some(Down), None),
            (Some(Alive), Some(Alive), None),
            (Some(Down), Some(Down), None),
        ];
        for (before, after, want) in cases {
            assert_eq!(transition(before, after), want, "{before:?} -> {after:?}");
        }
    }
}
