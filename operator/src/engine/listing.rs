//! What one pool's record lists: the piece both the announcer decision ([`super::announcers`])
//! and the writers of the record ([`super::record`]) and the pool status ([`super::pools`]) read,
//! so none depends on another.

use ironlb_core::v1alpha1::Allocation;

/// One pool's allocations, with what speakers decide from and who announces them: every
/// allocation of the pool, in Service order. Nothing is left out at any size: the record is
/// spread over bounded slices ([`super::record`]), so no object limit caps it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Listing {
    /// Every allocation, in Service order.
    pub(crate) allocations: Vec<Allocation>,
}
