//! The files a surface stores (OpenAI uploads and generated outputs, Gemini uploads),
//! whatever its file object looks like: found by id through a hash map, listed in upload
//! order through an ordered map of sequence numbers (which also seed the surfaces' ids).

use std::collections::{BTreeMap, HashMap};

/// Stored files of type `E`, by id and in order.
#[derive(Debug)]
pub struct Files<E> {
    by_id: HashMap<String, (u64, E)>,
    order: BTreeMap<u64, String>,
    next_seq: u64,
}

impl<E> Default for Files<E> {
    fn default() -> Self {
        Files { by_id: HashMap::new(), order: BTreeMap::new(), next_seq: 0 }
    }
}

impl<E> Files<E> {
    /// Takes the next sequence number (the surface derives the file's id from it); it is
    /// used up even if the file is then refused, as an upstream's counter would be.
    pub fn reserve(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Stores `entry` under `id` at `seq` (from [`Self::reserve`]).
    pub fn insert_at(&mut self, seq: u64, id: String, entry: E) {
        self.order.insert(seq, id.clone());
        self.by_id.insert(id, (seq, entry));
    }

    /// Stores `entry` under `id`, after every file so far.
    pub fn insert(&mut self, id: String, entry: E) {
        let seq = self.reserve();
        self.insert_at(seq, id, entry);
    }

    pub fn get(&self, id: &str) -> Option<&E> {
        self.by_id.get(id).map(|(_, e)| e)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The file's place in the order (a list cursor).
    pub fn seq(&self, id: &str) -> Option<u64> {
        self.by_id.get(id).map(|(s, _)| *s)
    }

    pub fn remove(&mut self, id: &str) -> Option<E> {
        let (seq, e) = self.by_id.remove(id)?;
        self.order.remove(&seq);
        Some(e)
    }

    /// The files after `after` (a sequence number; `None`: from the first), oldest first,
    /// or before it, newest first.
    pub fn list(&self, after: Option<u64>, ascending: bool) -> Box<dyn Iterator<Item = &E> + '_> {
        let ids: Box<dyn Iterator<Item = (&u64, &String)>> = match (ascending, after) {
            (false, None) => Box::new(self.order.iter().rev()),
            (false, Some(s)) => Box::new(self.order.range(..s).rev()),
            (true, None) => Box::new(self.order.iter()),
            (true, Some(s)) => Box::new(self.order.range(s + 1..)),
        };
        Box::new(ids.filter_map(|(_, id)| self.get(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_in_order_from_a_cursor_either_way() {
        let mut f = Files::default();
        for name in ["a", "b", "c", "d"] {
            f.insert(name.to_string(), name);
        }
        assert_eq!(f.reserve(), 4, "sequence numbers are used up");
        assert!(f.remove("b").is_some() && !f.contains("b"));
        let c = f.seq("c");
        assert_eq!(f.list(None, false).copied().collect::<Vec<_>>(), ["d", "c", "a"]);
        assert_eq!(f.list(c, false).copied().collect::<Vec<_>>(), ["a"]);
        assert_eq!(f.list(c, true).copied().collect::<Vec<_>>(), ["d"]);
        assert_eq!(f.list(None, true).copied().collect::<Vec<_>>(), ["a", "c", "d"]);
    }
}
