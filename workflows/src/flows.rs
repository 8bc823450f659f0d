//! The example flows shipped with ZEngine (`workflows/flows/*.json`): restaurant ordering with
//! payment by photo, hotel reservation, barber-shop appointment. `zengine dev` publishes them for
//! the demo tenant; they double as end-to-end test fixtures and authoring examples.

use zengine_domain::flow::FlowGraph;

/// `(name, JSON source)` of every example flow.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("restaurant", include_str!("../flows/restaurant.json")),
    ("hotel", include_str!("../flows/hotel.json")),
    ("barber", include_str!("../flows/barber.json")),
];

/// The parsed example flows.
pub fn examples() -> Vec<FlowGraph> {
    EXAMPLES
        .iter()
        .map(|(name, json)| {
            FlowGraph::from_json(json)
                .unwrap_or_else(|e| panic!("example flow {name} is invalid: {e:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_example_flow_is_valid_and_named_like_its_file() {
        for (graph, (name, _)) in super::examples().iter().zip(super::EXAMPLES) {
            assert_eq!(&graph.id, name);
        }
    }
}
