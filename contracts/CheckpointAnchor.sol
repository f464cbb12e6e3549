// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title CheckpointAnchor: records signed Merkle-log checkpoints as events, nothing else.
/// @notice Only the owner (the log operator) may anchor. The checkpoint itself stays off chain;
/// the event binds its SHA-256 to the tree size and root hash, so anyone holding the signed note
/// can find and check it by its hash.
contract CheckpointAnchor {
    address public immutable owner;

    event Anchored(bytes32 indexed checkpointHash, uint64 treeSize, bytes32 rootHash);

    error NotOwner();

    constructor() {
        owner = msg.sender;
    }

    function anchor(bytes32 checkpointHash, uint64 treeSize, bytes32 rootHash) external {
        if (msg.sender != owner) revert NotOwner();
        emit Anchored(checkpointHash, treeSize, rootHash);
    }
}
