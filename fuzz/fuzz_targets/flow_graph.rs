//! Flow documents: JSON parse, located shape errors and graph validation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(graph) = zengine_domain::flow::FlowGraph::from_json(text) {
            // The validator guarantees every edge of every node names an existing node.
            for node in &graph.nodes {
                for (field, target) in node.kind.edges() {
                    assert!(
                        graph.node(target).is_some(),
                        "validated graph has a dangling edge {}.{field} -> {target}",
                        node.id
                    );
                }
            }
            assert!(
                graph.node(&graph.start).is_some(),
                "validated graph lacks its start node"
            );
        }
    }
});
